//! The `loktar` command line: argument parsing, dispatch and exit codes.
//!
//! Exit codes are a contract: 0 success, 1 a pipeline failed (or `loktar
//! doctor` found a problem), 2 a usage or
//! configuration error. Data goes to stdout; messages and logs to stderr.

mod doctor;
mod manuals;
mod plugins;
mod remote;
mod run;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::app::Range;
use crate::app::context::{self, Context, Options, Planned, unknown_package};
use crate::config::{Providers, schema};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::render::plan::FixedJson;
use crate::render::{self, Format, View};
use crate::terminal::escaped;

/// Continuous integration for polyglot monorepos.
///
/// Loktar reads the packages of a repository from `loktar.json`, finds the
/// ones a change touches, adds everything that depends on them, and runs
/// them in dependency order.
#[derive(Debug, Parser)]
#[command(name = "loktar", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    /// Any folder inside the repository [default: the current folder]
    #[arg(long, global = true, value_name = "DIR", env = "LOKTAR_REPO")]
    repo: Option<PathBuf>,

    /// The host configuration (TOML), never read from the repository being
    /// built [default: `LOKTAR_CONFIG`, else ~/.config/loktar/loktar.toml]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// When to colour messages on stderr (`NO_COLOR` is honoured)
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check what a run needs before one does: the configuration, each plugin and its grants, secrets,
    /// programs, isolation, the container engine, registries, stores, GitHub, hosts. Exits 1 if
    /// anything fails
    Doctor(DoctorArgs),
    /// Propose a loktar.json from the repository's folders (a Dockerfile, pyproject.toml,
    /// setup.py, pom.xml, src/main/java, DEBIAN/control); `--write` writes it
    Init(InitArgs),
    /// Show which packages a change affects, in dependency order, and why
    Plan(PlanArgs),
    /// Show the chain from a changed file to a package
    Why(WhyArgs),
    /// Show the whole dependency graph
    Graph(GraphArgs),
    /// Print the JSON Schema of loktar.json, for editors
    Schema,
    /// Run the affected packages through test, build, publish, store and notify
    Run(run::RunArgs),
    /// List past runs, or show one with its stages and log files
    Runs(RunsArgs),
    /// List the plugins: name, version, roles, capabilities requested and granted, source
    Plugins(PluginsArgs),
    /// Work on one plugin: `check FILE.wasm` says what a component is and needs before it is
    /// wired into a run
    Plugin(PluginArgs),
    /// A Loktar server's runs: list, show, logs, cancel, rerun, trigger (`--server URL`,
    /// token from `LOKTAR_TOKEN`)
    Remote(remote::RemoteArgs),
    /// Print the completion script of a shell: `loktar completions bash > /etc/bash_completion.d/loktar`
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page, or with `--dir` write it and one per command there (`loktar-run.1`, …)
    Man {
        /// Write the pages into this folder (e.g. /usr/local/share/man/man1) and list them
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Serve GitHub webhooks and the REST API: runs each push in the background, as `loktar run`
    /// would, with `[server]` of the host configuration. Prints the address it listens on;
    /// SIGTERM stops it after running runs finish (or, after 30 s, are cancelled)
    Server,
    /// Run the package jobs of a server's runs on this machine, taken from NATS JetStream (`[nats]`
    /// and `[executor]` of the host configuration). SIGTERM stops it: nothing new is taken, and
    /// running jobs finish within `--grace` or are handed back to another executor
    Executor(ExecutorArgs),
}

#[derive(Debug, Args)]
struct ExecutorArgs {
    /// The NATS server, with JetStream on [default: `url` under `[nats]`]
    #[arg(long, value_name = "URL")]
    nats: Option<String>,

    /// The queues to take jobs from, comma-separated [default: `queues` under `[executor]`, else `default`]
    #[arg(long, value_name = "QUEUE,…", value_delimiter = ',')]
    queues: Vec<String>,

    /// Jobs at once [default: `concurrency` under `[executor]`, else the number of cores]
    #[arg(long, short = 'j', value_name = "N")]
    concurrency: Option<usize>,

    /// Where mirrors, checkouts and artifacts go [default: `work_dir` under `[executor]`, else
    /// `loktar-executor` beside loktar.toml]
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,

    /// Seconds a stopping executor lets running jobs finish before handing them back [default: `grace`
    /// under `[executor]`, else 60]
    #[arg(long, value_name = "SECONDS")]
    grace: Option<u64>,
}

#[derive(Debug, Args)]
struct InitArgs {
    /// Write loktar.json (without it, nothing is written)
    #[arg(long)]
    write: bool,

    /// Replace an existing loktar.json
    #[arg(long, requires = "write")]
    force: bool,

    /// Output format
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    format: ListFormat,
}

#[derive(Debug, Args)]
struct DoctorArgs {
    /// How long a network check waits for an answer, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    timeout: u64,

    /// Output format
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    format: ListFormat,
}

#[derive(Debug, Args)]
struct RunsArgs {
    #[command(subcommand)]
    action: Option<RunsAction>,

    /// How many runs to list, newest first
    #[arg(long, default_value_t = 20)]
    limit: usize,

    /// Output format
    #[arg(long, value_enum, default_value_t = ListFormat::Text, global = true)]
    format: ListFormat,
}

#[derive(Debug, Subcommand)]
enum RunsAction {
    /// Show one run: each package's stages, outcomes, times and log files
    Show {
        /// The run's number, as `loktar runs` lists it
        id: i64,
    },
}

#[derive(Debug, Args)]
struct PluginsArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    format: ListFormat,
}

#[derive(Debug, Args)]
struct PluginArgs {
    #[command(subcommand)]
    action: PluginAction,
}

#[derive(Debug, Subcommand)]
enum PluginAction {
    /// Load a component with no configuration and report its name, version, roles, the
    /// capabilities it declares, each interface it imports and what Loktar does with it, and the
    /// loktar.toml lines that let it load. Exits 2 if Loktar refuses it whatever the configuration
    /// (an import it does not provide — found before compiling — or a capability not declared)
    Check(PluginCheckArgs),
}

#[derive(Debug, Args)]
struct PluginCheckArgs {
    /// The component file (`.wasm`)
    #[arg(value_name = "FILE.wasm")]
    file: PathBuf,

    /// Output format
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    format: ListFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ListFormat {
    Text,
    Json,
}

/// Which changes to look at.
#[derive(Debug, Args)]
pub(crate) struct RangeArgs {
    /// Older end of the range [default: merge-base of head with the default branch,
    /// or head's parent when head is on the default branch]
    #[arg(long, value_name = "REV", env = "LOKTAR_BASE")]
    base: Option<String>,

    /// Newer end of the range
    #[arg(long, value_name = "REV", env = "LOKTAR_HEAD", default_value = "HEAD")]
    head: String,

    /// The default branch [default: origin/HEAD, then main, then master]
    #[arg(long, value_name = "BRANCH", env = "LOKTAR_DEFAULT_BRANCH")]
    default_branch: Option<String>,

    /// Look at uncommitted changes (staged, unstaged and untracked) instead of a range
    /// (takes precedence over `--base`/`--head`)
    #[arg(long, conflicts_with = "github_pr")]
    worktree: bool,

    /// Take the changes of GitHub pull request N — its files and commit messages — from
    /// the GitHub API (`[github]` in loktar.toml) instead of local git
    #[arg(long, value_name = "N", env = "LOKTAR_GITHUB_PR", conflicts_with_all = ["base", "head"])]
    github_pr: Option<u64>,
}

impl From<&RangeArgs> for Range {
    fn from(args: &RangeArgs) -> Range {
        Range {
            base: args.base.clone(),
            head: args.head.clone(),
            default_branch: args.default_branch.clone(),
            worktree: args.worktree,
            github_pr: args.github_pr,
            branch: None,
        }
    }
}

#[derive(Debug, Args)]
struct PlanArgs {
    #[command(flatten)]
    range: RangeArgs,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Args)]
struct WhyArgs {
    /// The package to explain
    package: String,

    #[command(flatten)]
    range: RangeArgs,
}

#[derive(Debug, Args)]
struct GraphArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let color = match cli.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    init_logging(color);
    let started = std::time::Instant::now();
    match run(cli, color) {
        Ok(done) => {
            tracing::debug!(elapsed = ?started.elapsed(), "output ready");
            match write_stdout(done.output) {
                ExitCode::SUCCESS => done.code,
                failed => failed,
            }
        }
        Err(Diagnostics(problems)) => {
            let mut stderr = std::io::stderr().lock();
            for problem in &problems {
                let _ = writeln!(stderr, "{}\n", problem.render(color));
            }
            if problems.len() > 1 {
                let _ = writeln!(stderr, "{} errors", problems.len());
            }
            ExitCode::from(2)
        }
    }
}

/// Logs to stderr: warnings and errors, or what `RUST_LOG` asks for.
fn init_logging(color: bool) {
    let logger = tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(color);
    // A plain level, unless `RUST_LOG` is set: building a filter from
    // directives is a noticeable part of a quick command's start.
    let _ = match tracing_subscriber::EnvFilter::try_from_default_env() {
        Ok(filter) => logger.with_env_filter(filter).try_init(),
        Err(_) => logger.with_max_level(tracing::Level::WARN).try_init(),
    };
}

fn write_stdout(output: Output) -> ExitCode {
    // Whatever was printed before goes first.
    let _ = std::io::stdout().flush();
    let mut stdout = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let written = match output {
        Output::Text(text) => stdout.write_all(text.as_bytes()),
        Output::Stream(write) => write(&mut stdout),
    };
    match written.and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stopped early (`loktar plan | head`) is not an error.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            // Not `eprintln!`: stderr may be unwritable too (a full disk), and that must not panic.
            let _ = writeln!(std::io::stderr(), "error: cannot write to stdout: {error}");
            ExitCode::from(2)
        }
    }
}

/// What a command prints on stdout, and the exit code after it.
#[derive(Debug)]
pub(crate) struct Done {
    output: Output,
    code: ExitCode,
}

impl Done {
    /// Success, printing `output`.
    fn with_output(output: String) -> Done {
        Done::printing(Output::Text(output), ExitCode::SUCCESS)
    }

    /// Printing `output`, then exiting with `code`.
    pub(crate) fn printing(output: Output, code: ExitCode) -> Done {
        Done { output, code }
    }
}

/// What goes to stdout.
pub(crate) enum Output {
    /// Text ready to print.
    Text(String),
    /// Written straight to stdout in pieces: the largest outputs are not
    /// built whole in memory first.
    Stream(Box<WriteOutput>),
}

/// Writes an output to stdout.
type WriteOutput = dyn FnOnce(&mut dyn Write) -> std::io::Result<()>;

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Text(text) => f.debug_tuple("Text").field(&text.len()).finish(),
            Output::Stream(_) => f.write_str("Stream"),
        }
    }
}

fn run(cli: Cli, color: bool) -> Result<Done, Diagnostics> {
    let options = Options { repo: cli.repo, config: cli.config, ..Options::default() };
    match cli.command {
        Command::Run(args) => run::run(&options, &args, color),
        Command::Runs(args) => runs(&options, &args).map(Done::with_output),
        Command::Remote(args) => remote::remote(&args).map(Done::with_output).map_err(Into::into),
        Command::Init(args) => init(&options, &args).map(Done::with_output),
        Command::Doctor(args) => doctor::doctor(&options, args.format, args.timeout),
        Command::Plugin(PluginArgs { action: PluginAction::Check(args) }) => {
            plugins::check(&args.file, args.format == ListFormat::Json)
        }
        Command::Completions { shell } => Ok(Done::with_output(manuals::completions(shell))),
        Command::Man { dir } => manuals::man(dir.as_deref()).map(Done::with_output).map_err(Into::into),
        Command::Server => {
            crate::server::serve(&options).map(|()| Done::with_output(String::new())).map_err(Into::into)
        }
        Command::Executor(args) => {
            let executor = crate::executor::ExecutorOptions {
                nats: args.nats,
                queues: args.queues,
                concurrency: args.concurrency,
                work_dir: args.work_dir,
                grace: args.grace.map(std::time::Duration::from_secs),
            };
            crate::executor::serve(&options, &executor).map(|()| Done::with_output(String::new())).map_err(Into::into)
        }
        other => inspect(other, &options).map(|output| Done::printing(output, ExitCode::SUCCESS)),
    }
}

/// `loktar init`: the proposal, and with `--write` loktar.json written and loaded back.
fn init(options: &Options, args: &InitArgs) -> Result<String, Diagnostics> {
    let root = context::find_root(options.repo.as_deref())?;
    let manifest_path = root.join(crate::config::MANIFEST);
    if manifest_path.exists() && !args.force {
        return Err(Diagnostic::new(format!("`{}` exists already", manifest_path.display()))
            .hint("`loktar graph` shows what it declares; `loktar init --write --force` replaces it")
            .into());
    }
    let proposal = crate::app::init::propose(&root)?;
    if proposal.packages.is_empty() {
        return Err(Diagnostic::new("no package found: no folder holds a Dockerfile, pyproject.toml, setup.py, pom.xml, src/main/java or DEBIAN/control")
            .hint("loktar.json can still be written by hand: see the README's `loktar.json` section")
            .into());
    }
    let manifest = proposal.manifest();
    // A discovery plugin that fails on a file is a note: the proposal still stands.
    // Without a usable host configuration, the proposal still stands.
    let (dependencies, discovery_failures) =
        crate::app::init::dependencies(options, &root, &manifest).unwrap_or_else(|problems| {
            let listed = problems.0.into_iter().map(|problem| problem.context("dependencies not listed")).collect();
            (Vec::new(), listed)
        });
    let mut notes = proposal.notes.clone();
    notes.extend(discovery_failures.into_iter().map(|problem| match problem.hint {
        Some(hint) => format!("{} ({hint})", problem.message),
        None => problem.message,
    }));
    let text = format!("{}\n", serde_json::to_string_pretty(&manifest).unwrap_or_default());
    if args.write {
        std::fs::write(&manifest_path, &text)
            .map_err(|e| Diagnostic::new(format!("cannot write `{}`: {e}", manifest_path.display())))?;
        // What was written loads as every command will load it.
        Context::load(options)?;
    }
    if args.format == ListFormat::Json {
        let packages: Vec<serde_json::Value> = proposal
            .packages
            .iter()
            .map(|p| serde_json::json!({ "name": p.name, "dir": p.dir, "pkg_type": p.kind, "why": p.why }))
            .collect();
        let answer = serde_json::json!({
            "loktar_json": manifest,
            "packages": packages,
            "dependencies": dependencies,
            "notes": notes,
            "written": args.write,
        });
        return Ok(to_json(&answer));
    }
    let mut out = format!("{} package(s) found\n", proposal.packages.len());
    let width = proposal.packages.iter().map(|p| p.name.len()).max().unwrap_or(0);
    for package in &proposal.packages {
        out.push_str(&format!(
            "  {:width$}  {:6}  {}\n",
            escaped(&package.name),
            package.kind,
            escaped(&package.why.join(", "))
        ));
    }
    if !dependencies.is_empty() {
        out.push_str(&format!(
            "{} dependenc{} found by the discovery plugins\n",
            dependencies.len(),
            if dependencies.len() == 1 { "y" } else { "ies" }
        ));
    }
    for found in &dependencies {
        out.push_str(&format!(
            "  {} → {}  ({}: `{}`)\n",
            escaped(&found.package),
            escaped(&found.depends_on),
            escaped(&found.plugin),
            escaped(&found.source)
        ));
    }
    for note in &notes {
        out.push_str(&format!("note: {}\n", escaped(note)));
    }
    if args.write {
        out.push_str(&format!("written: {}\n", manifest_path.display()));
    } else {
        out.push_str(&format!("\n{text}\nnothing written: `loktar init --write` writes this loktar.json\n"));
    }
    Ok(out)
}

/// `loktar runs` and `loktar runs show`.
fn runs(options: &Options, args: &RunsArgs) -> Result<String, Diagnostics> {
    let root = context::find_root(options.repo.as_deref())?;
    if !root.join(crate::config::LOKTAR_DIR).join(crate::store::DATABASE).exists() {
        return Ok(render::run::runs(&[]));
    }
    let store = crate::store::RunStore::open(&root)?;
    let json = args.format == ListFormat::Json;
    match &args.action {
        None => {
            let rows = store.runs(args.limit)?;
            Ok(if json { to_json(&rows) } else { render::run::runs(&rows) })
        }
        Some(RunsAction::Show { id }) => {
            let Some((run, stages)) = store.run(*id)? else {
                return Err(Diagnostic::new(format!("no run number {id} in this repository"))
                    .hint("`loktar runs` lists the runs")
                    .into());
            };
            Ok(if json {
                to_json(&serde_json::json!({ "run": run, "stages": stages }))
            } else {
                render::run::run_record(&run, &stages)
            })
        }
    }
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).map_or_else(|e| format!("{{\"error\": \"{e}\"}}\n"), |text| text + "\n")
}

/// The commands that only read: they print and succeed, or report problems.
fn inspect(command: Command, options: &Options) -> Result<Output, Diagnostics> {
    let providers = Providers::builtin();
    let options = options.clone();
    let text = match command {
        Command::Run(_)
        | Command::Doctor(_)
        | Command::Init(_)
        | Command::Runs(_)
        | Command::Remote(_)
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::Server
        | Command::Plugin(_)
        | Command::Executor(_) => {
            return Err(Diagnostic::new("internal error: not an inspecting command").into());
        }
        Command::Plugins(args) => plugins::list(&options, args.format == ListFormat::Json)?,
        Command::Schema => format!("{:#}\n", schema(&providers)),
        Command::Graph(args) => {
            let context = Context::load(&options)?;
            let view = View::whole(&context.workspace, &context.graph);
            match args.format {
                Format::Text => render::graph::text(&view),
                Format::Json => render::graph::json(&view),
                Format::Dot | Format::Svg => picture(&view, args.format),
            }
        }
        Command::Plan(args) if args.format == Format::Json => return plan_json(&options, &Range::from(&args.range)),
        Command::Plan(args) => {
            let (context, planned) = Context::load_and_plan(&options, &Range::from(&args.range))?;
            if matches!(args.format, Format::Dot | Format::Svg) {
                picture(&View::of_plan(&context.workspace, &context.graph, &planned.plan), args.format)
            } else {
                // The repository's own plugins, with what they asked for and got, end the text plan.
                planned.report(&context).text() + &crate::config::plugins::summary(&context.settings)
            }
        }
        Command::Why(args) => {
            let (context, planned) = Context::load_and_plan(&options, &Range::from(&args.range))?;
            let Some(package) = context.workspace.index_of(&args.package) else {
                return Err(unknown_package(&context, &args.package).into());
            };
            why(&context, &planned, package)
        }
    };
    Ok(Output::Text(text))
}

/// `loktar plan --format json`: the parts of the JSON that do not depend on
/// the change (the packages' fixed fields, the repository's plugins) are
/// written while git reads the range, the rest straight to stdout.
fn plan_json(options: &Options, range: &Range) -> Result<Output, Diagnostics> {
    let (context, planned, fixed) = Context::load_and_plan_preparing(options, range, |context| {
        FixedJson::new(&context.workspace, &context.settings)
    })?;
    Ok(Output::Stream(Box::new(move |stdout| planned.report(&context).write_json(&fixed, stdout))))
}

/// DOT or SVG of a view.
fn picture(view: &View<'_>, format: Format) -> String {
    if format == Format::Svg { render::svg::render(view) } else { render::dot::render(view) }
}

/// Explains why a package is (or is not) in the plan.
fn why(context: &Context, planned: &Planned, package: usize) -> String {
    let packages = &context.workspace.packages;
    let shown = |package: usize| escaped(&packages[package].name);
    let name = shown(package);
    let report = planned.report(context);
    let mut out = format!("{}\n", report.range_line());
    if let Some(commit) = &planned.detection.nobuild {
        // A pull request's commits come from GitHub's API, not from git.
        let sha: String = commit.sha.chars().take(10).collect();
        out.push_str(&format!("`{name}` is not affected: commit `{}` says NOBUILD\n", escaped(&sha)));
        return out;
    }
    if !planned.plan.contains(package) {
        out.push_str(&format!("`{name}` is not affected: nothing it contains or depends on changed\n"));
        return out;
    }
    out.push_str(&format!("`{name}` is affected:\n"));
    let chain = planned.plan.chain(package);
    let origin = chain[0];
    let seed = planned.plan.step(origin).and_then(|s| s.seed.as_ref());
    if let Some(seed) = seed {
        if let Some(first) = seed.files.first() {
            let more = match seed.files.len() - 1 {
                0 => String::new(),
                n => format!(" (and {})", render::plan::plural(n, "more file")),
            };
            out.push_str(&format!("  `{}` changed{more}\n", escaped(first)));
            out.push_str(&format!("  → `{}` owns it\n", shown(origin)));
        } else if seed.manifest.is_some() {
            out.push_str(&format!("  the entry of `{}` in loktar.json changed\n", shown(origin)));
        }
    }
    for pair in chain.windows(2) {
        out.push_str(&format!("  → `{}` depends on `{}`\n", shown(pair[1]), shown(pair[0])));
    }
    out
}
