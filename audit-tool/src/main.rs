//! `conclave-audit`: the auditor's tool (being written).

fn main() {}
