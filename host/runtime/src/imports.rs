//! What a component imports, read from its bytes before it is compiled: a
//! plugin that needs an interface Loktar does not provide is refused at
//! once — not after a compile of tens of seconds — with every such import
//! named. Which capabilities the provided imports stand for is decided
//! after the compile, from the component's types ([`super::load`]).

use wasmparser::{
    ComponentAlias, ComponentExternalKind, ComponentOuterAliasKind, ComponentType, ComponentTypeRef,
    InstanceTypeDeclaration, Parser, Payload, TypeBounds,
};

use super::PluginError;

/// The interfaces Loktar links, by package and version: its own, and WASI
/// 0.2's (`wasi:http` with the `http` capability; `wasi:sockets` linked but
/// closed: no plugin's WASI context allows a socket).
const PROVIDED: [(&str, &str); 8] = [
    ("loktar:plugin/", "0.1."),
    ("wasi:cli/", "0.2."),
    ("wasi:clocks/", "0.2."),
    ("wasi:filesystem/", "0.2."),
    ("wasi:http/", "0.2."),
    ("wasi:io/", "0.2."),
    ("wasi:random/", "0.2."),
    ("wasi:sockets/", "0.2."),
];

/// Imports named in a refusal, at most, and characters of each.
const SHOWN_IMPORTS: usize = 10;
const SHOWN_CHARS: usize = 100;

/// Refuses a component that imports anything Loktar does not provide,
/// naming every such import. Bytes that cannot be read are left to the
/// compiler, which says what is wrong with them.
pub(super) fn check(name: &str, bytes: &[u8]) -> Result<(), PluginError> {
    let Some(imports) = top_level_imports(bytes) else { return Ok(()) };
    let missing: Vec<String> = imports.into_iter().filter(|import| !is_provided(import)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    // Named, but not without end: a component may import thousands of names.
    let mut named: Vec<String> = missing
        .iter()
        .take(SHOWN_IMPORTS)
        .map(|import| {
            let shown: String = import.chars().take(SHOWN_CHARS).collect();
            if shown.len() < import.len() { format!("`{shown}…`") } else { format!("`{shown}`") }
        })
        .collect();
    if missing.len() > SHOWN_IMPORTS {
        named.push(format!("and {} more", missing.len() - SHOWN_IMPORTS));
    }
    Err(PluginError::new(format!("plugin `{name}` imports what Loktar does not provide: {}", named.join(", "))).hint(
        "Loktar provides `loktar:plugin` 0.1 (wit/loktar.wit) and WASI 0.2 (cli, clocks, filesystem, io, random, \
         sockets, and http with the `http` capability); build the plugin without the others",
    ))
}

/// Whether Loktar links `import` (`wasi:cli/environment@0.2.3`).
pub(super) fn is_provided(import: &str) -> bool {
    let (interface, version) = import.split_once('@').unwrap_or((import, ""));
    PROVIDED.iter().any(|(package, major)| interface.starts_with(package) && version.starts_with(major))
}

/// The interfaces and functions the component itself imports (not those of
/// components nested in it, nor the types its imports share); `None` when
/// the bytes are not a component that can be read. An instance whose type
/// exports nothing to call (only types, which wasmtime lets go unlinked) is
/// not counted.
pub(super) fn top_level_imports(bytes: &[u8]) -> Option<Vec<String>> {
    let mut imports = Vec::new();
    // Whether each type of the component's type index space, in order, may
    // have something to call: only instance types that export no function,
    // resource or instance are known not to.
    let mut callable: Vec<bool> = Vec::new();
    // Each nested module or component starts with its own `Version` and ends with its `End`.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.ok()? {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentTypeSection(section) if depth == 1 => {
                for ty in section {
                    callable.push(match ty.ok()? {
                        ComponentType::Instance(declarations) => declarations.iter().any(|declaration| {
                            matches!(
                                declaration,
                                InstanceTypeDeclaration::Export {
                                    ty: ComponentTypeRef::Func(_)
                                        | ComponentTypeRef::Instance(_)
                                        | ComponentTypeRef::Type(TypeBounds::SubResource),
                                    ..
                                }
                            )
                        }),
                        _ => true,
                    });
                }
            }
            Payload::ComponentAliasSection(section) if depth == 1 => {
                for alias in section {
                    let adds_type = matches!(
                        alias.ok()?,
                        ComponentAlias::InstanceExport { kind: ComponentExternalKind::Type, .. }
                            | ComponentAlias::Outer { kind: ComponentOuterAliasKind::Type, .. }
                    );
                    if adds_type {
                        callable.push(true);
                    }
                }
            }
            Payload::ComponentImportSection(section) if depth == 1 => {
                for import in section {
                    let import = import.ok()?;
                    let counted = match import.ty {
                        // Unknown index: counted, and the compiler has the last word.
                        ComponentTypeRef::Instance(index) => {
                            callable.get(usize::try_from(index).ok()?).copied().unwrap_or(true)
                        }
                        ComponentTypeRef::Func(_) => true,
                        ComponentTypeRef::Type(_) => {
                            callable.push(true);
                            false
                        }
                        _ => false,
                    };
                    if counted {
                        imports.push(import.name.name.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    Some(imports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loktar_and_wasi_0_2_are_provided_and_nothing_else() {
        for import in ["loktar:plugin/log@0.1.0", "wasi:cli/environment@0.2.3", "wasi:sockets/udp@0.2.0"] {
            assert!(is_provided(import), "{import}");
        }
        for import in ["jco:node/fs", "wasi:cli/environment@0.3.0", "wasi:keyvalue/store@0.2.0", "loktar:plugin/log"] {
            assert!(!is_provided(import), "{import}");
        }
    }

    #[test]
    fn bytes_that_are_not_a_component_are_left_to_the_compiler() {
        assert!(check("broken", b"\0asm\x0d\x00\x01\x00\x7f").is_ok());
        assert_eq!(top_level_imports(b"\0asm\x0d\x00\x01\x00"), Some(Vec::new()));
    }
}
