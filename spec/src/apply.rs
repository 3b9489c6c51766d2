//! The applier: one committed command in, one response out. The only entry point for
//! committed entries, called identically by the server and the models.
