//! `memio completions` and `memio man`: what an installed `memio` needs
//! around it, generated from the same command definitions the parser uses.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use clap_complete::Shell;

use crate::error::{CliError, CliResult, EXIT_OK};

/// The shells `memio completions` writes for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ShellName {
    /// Bash: `source <(memio completions bash)`.
    Bash,
    /// Zsh: put the output in a folder of `$fpath` as `_memio`.
    Zsh,
    /// Fish: save as `~/.config/fish/completions/memio.fish`.
    Fish,
}

/// Print shell completions for memio.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  source <(memio completions bash)\n  \
    memio completions zsh > ~/.zfunc/_memio\n  \
    memio completions fish > ~/.config/fish/completions/memio.fish")]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: ShellName,
}

/// Print memio's manual page, or write one page per command.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  memio man | man -l -\n  \
    memio man --out /usr/local/share/man/man1")]
pub(crate) struct ManArgs {
    /// Write memio.1 and memio-<command>.1 into this folder instead of
    /// printing memio.1.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Runs `memio completions`.
pub(crate) fn completions(args: &CompletionsArgs, mut cmd: clap::Command) -> CliResult {
    let shell = match args.shell {
        ShellName::Bash => Shell::Bash,
        ShellName::Zsh => Shell::Zsh,
        ShellName::Fish => Shell::Fish,
    };
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut cmd, "memio", &mut text);
    let mut out = std::io::stdout().lock();
    out.write_all(&text)?;
    out.flush()?;
    Ok(EXIT_OK)
}

/// Runs `memio man`.
pub(crate) fn man(args: &ManArgs, cmd: clap::Command) -> CliResult {
    let Some(dir) = &args.out else {
        let mut text = Vec::new();
        render(cmd, &mut text).map_err(|e| CliError::io("memio.1", &e))?;
        let mut out = std::io::stdout().lock();
        out.write_all(&text)?;
        out.flush()?;
        return Ok(EXIT_OK);
    };
    std::fs::create_dir_all(dir).map_err(|e| CliError::io(dir.display(), &e))?;
    let mut pages = vec![("memio.1".to_owned(), cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        // clap names commands with `&'static str` (or its `string`
        // feature); one short name per page lives until the process exits.
        let name: &'static str = Box::leak(format!("memio-{}", sub.get_name()).into_boxed_str());
        pages.push((format!("{name}.1"), sub.clone().name(name)));
    }
    for (file, page) in pages {
        let path = dir.join(&file);
        let mut text = Vec::new();
        render(page, &mut text)
            .and_then(|()| std::fs::write(&path, text))
            .map_err(|e| CliError::io(path.display(), &e))?;
    }
    Ok(EXIT_OK)
}

fn render(cmd: clap::Command, out: &mut Vec<u8>) -> std::io::Result<()> {
    clap_mangen::Man::new(cmd).render(out)
}
