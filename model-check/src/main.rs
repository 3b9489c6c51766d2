//! `oxetcd-model`: check, explore and trace the stateright models of oxetcd.

fn main() {
    eprintln!("oxetcd-model: no models yet");
    std::process::exit(2);
}
