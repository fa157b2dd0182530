//! The `loktar` binary as the operating system loads it.

use crate::support::loktar_bin;

/// `e_type` of an ELF file: a position-independent executable is `ET_DYN`.
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;

#[test]
fn the_binary_is_a_position_independent_executable() {
    // Loaded at a random address each start (ASLR): it holds registry
    // passwords and GitHub keys, and a fixed layout helps whoever attacks it.
    let binary = std::fs::read(loktar_bin()).expect("read the loktar binary");
    assert_eq!(&binary[..4], b"\x7fELF", "not an ELF file");
    let e_type = u16::from_le_bytes([binary[16], binary[17]]);
    assert_ne!(e_type, ET_EXEC, "linked at a fixed address (-no-pie)");
    assert_eq!(e_type, ET_DYN, "unexpected ELF type {e_type}");
}
