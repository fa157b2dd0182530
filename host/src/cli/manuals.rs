//! `loktar completions <shell>` and `loktar man`: shell completion scripts
//! (clap_complete) and roff man pages (clap_mangen), both made from the
//! command line's own definition, so they never fall behind it.

use std::path::Path;

use clap::CommandFactory;

use super::Cli;
use crate::diagnostic::Diagnostic;

/// The completion script of `shell`.
pub(crate) fn completions(shell: clap_complete::Shell) -> String {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "loktar", &mut script);
    String::from_utf8_lossy(&script).into_owned()
}

/// The man page of `loktar` (section 1); with `dir`, that page and one per
/// command (`loktar-run.1`, …) written there instead, naming each file.
pub(crate) fn man(dir: Option<&Path>) -> Result<String, Diagnostic> {
    let command = Cli::command();
    let Some(dir) = dir else { return render(command) };
    std::fs::create_dir_all(dir).map_err(|e| cannot_write(dir, &e))?;
    let mut pages = vec![("loktar".to_string(), command.clone())];
    for sub in command.get_subcommands().filter(|sub| sub.get_name() != "help") {
        let name = format!("loktar-{}", sub.get_name());
        // The page's own name and version, as `man` shows them.
        let page = sub.clone().display_name(name.clone()).version(env!("CARGO_PKG_VERSION"));
        pages.push((name, page));
    }
    let mut written = String::new();
    for (name, page) in pages {
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, render(page)?).map_err(|e| cannot_write(&path, &e))?;
        written.push_str(&format!("{}\n", path.display()));
    }
    Ok(written)
}

fn render(command: clap::Command) -> Result<String, Diagnostic> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .map_err(|e| Diagnostic::new(format!("cannot write the man page: {e}")))?;
    Ok(String::from_utf8_lossy(&page).into_owned())
}

fn cannot_write(path: &Path, error: &std::io::Error) -> Diagnostic {
    Diagnostic::new(format!("cannot write `{}`: {error}", path.display()))
        .hint("give `--dir` a folder you may write to, e.g. ~/.local/share/man/man1")
}
