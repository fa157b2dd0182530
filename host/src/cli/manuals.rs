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
/// command, nested ones too (`loktar-run.1`, `loktar-remote-runs.1`, …),
/// written there instead, naming each file.
pub(crate) fn man(dir: Option<&Path>) -> Result<String, Diagnostic> {
    let mut command = Cli::command().disable_help_subcommand(true);
    // Built: each command knows its full name (`loktar run`) and the global options.
    command.build();
    let Some(dir) = dir else { return render(command) };
    std::fs::create_dir_all(dir).map_err(|e| cannot_write(dir, &e))?;
    clap_mangen::generate_to(command.clone(), dir).map_err(|e| cannot_write(dir, &e))?;
    let mut names = Vec::new();
    page_names(&command, &mut names);
    Ok(names.iter().map(|name| format!("{}\n", dir.join(format!("{name}.1")).display())).collect())
}

/// The page of `command` and of each command below it, as clap_mangen names them.
fn page_names(command: &clap::Command, names: &mut Vec<String>) {
    names.push(command.get_display_name().unwrap_or(command.get_name()).to_string());
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        page_names(sub, names);
    }
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
