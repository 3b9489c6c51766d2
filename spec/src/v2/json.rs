//! Minimal, exact JSON rendering helpers matching Go's `encoding/json` output for the v2
//! bodies: string escaping (including Go's HTML-safe escapes) and `time.RFC3339Nano`.

/// Appends `s` as a JSON string literal, escaped as Go's `encoding/json` does.
pub fn push_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `s` as a JSON string literal.
pub fn string(s: &str) -> String {
    let mut out = String::new();
    push_string(&mut out, s);
    out
}

/// Formats milliseconds since the Unix epoch as Go's `time.RFC3339Nano` in UTC, e.g.
/// `2026-11-21T19:33:24.659Z` (trailing fractional zeros trimmed, no fraction at all
/// for whole seconds).
pub fn rfc3339_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let frac_ms = ms % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    if frac_ms != 0 {
        let frac = format!("{frac_ms:03}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a 400-year era.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_go_for_epoch_leap_day_and_fractions() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_ms(1_795_289_604_659), "2026-11-21T19:33:24.659Z");
        assert_eq!(rfc3339_ms(1_795_289_604_650), "2026-11-21T19:33:24.65Z");
    }

    #[test]
    fn strings_escape_like_go_encoding_json() {
        assert_eq!(
            string("a\"b\\c\n<&>\u{1}"),
            "\"a\\\"b\\\\c\\n\\u003c\\u0026\\u003e\\u0001\""
        );
    }
}
