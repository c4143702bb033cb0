//! The `rhizome` binary (subcommands come with the endpoints).

fn main() {}
