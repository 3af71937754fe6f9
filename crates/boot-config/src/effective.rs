//! Evaluation of config.txt: filters, includes and overrides → the settings the firmware uses.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use crate::config_txt::{
    classify, split_files, ConfigLine, ConfigTxt, InitramfsLine, InitramfsPlacement, LineKind,
    MAX_LINE_CHARS,
};
use crate::filter::{Filter, FilterContext, FilterState};

/// How deep `include` may nest (the main file is depth 0).
pub const MAX_INCLUDE_DEPTH: usize = 4;

/// How many files `include` may pull in during one evaluation. A boot partition needs one or
/// two (Ubuntu's `syscfg.txt`, `usercfg.txt`); the cap keeps a hostile `config.txt` from
/// costing more than this many file reads (plus one lookup per distinct missing name).
/// Every include counts, whatever the depth.
pub const MAX_INCLUDED_FILES: usize = 32;

/// An `include` line that was not followed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedInclude {
    /// The file name as written on the `include` line.
    pub name: String,
    /// Why it was not read.
    pub reason: SkipReason,
}

/// Why an `include` line was not followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// No such file: the firmware ignores the line.
    Missing,
    /// The line is nested [`MAX_INCLUDE_DEPTH`] files deep.
    TooDeep,
    /// The file was already included earlier in this evaluation.
    AlreadyIncluded,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Missing => write!(f, "not found, ignored"),
            SkipReason::TooDeep => write!(
                f,
                "nested more than {MAX_INCLUDE_DEPTH} files deep, not read"
            ),
            SkipReason::AlreadyIncluded => write!(f, "already included once, not read again"),
        }
    }
}

/// Why a config file could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncludeError {
    /// More than [`MAX_INCLUDED_FILES`] files were included; evaluation stopped at `file`.
    #[error(
        "include {file}: more than {cap} files included, evaluation stopped (a boot partition \
         needs a few; remove the extra include lines)"
    )]
    TooManyFiles {
        /// The include that would have been one too many.
        file: String,
        /// The cap, [`MAX_INCLUDED_FILES`].
        cap: usize,
    },
}

/// The settings that apply for one board/boot after filter evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Effective {
    settings: BTreeMap<String, String>,
    initramfs: Option<InitramfsLine>,
    included: Vec<String>,
    skipped_includes: Vec<SkippedInclude>,
}

impl Effective {
    /// The value of the last applying `key=value` line.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.settings.get(key).map(String::as_str)
    }

    /// The value of `key` read as a number, non-zero meaning on (e.g. `arm_64bit=1`).
    pub fn flag(&self, key: &str) -> Option<bool> {
        self.get(key)?.trim().parse::<u64>().ok().map(|n| n != 0)
    }

    /// All applying settings, sorted by key.
    pub fn settings(&self) -> impl Iterator<Item = (&str, &str)> {
        self.settings.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The last applying `initramfs` line, or else `ramfsfile=` (the older spelling, placed
    /// at `ramfsaddr=` if set) (DOC-BOOT).
    pub fn initramfs(&self) -> Option<&InitramfsLine> {
        self.initramfs.as_ref()
    }

    /// Files pulled in by `include`, in the order read.
    pub fn included_files(&self) -> &[String] {
        &self.included
    }

    /// `include` lines not followed, in order, with the reason.
    pub fn skipped_includes(&self) -> &[SkippedInclude] {
        &self.skipped_includes
    }

    fn finish(&mut self) {
        if self.initramfs.is_some() {
            return;
        }
        if let Some(list) = self.get("ramfsfile") {
            let files = split_files(list);
            if !files.is_empty() {
                let placement = match self.get("ramfsaddr") {
                    Some(addr) => InitramfsPlacement::Address(addr.to_string()),
                    None => InitramfsPlacement::Default,
                };
                self.initramfs = Some(InitramfsLine { files, placement });
            }
        }
    }
}

struct Evaluator<'a> {
    ctx: &'a FilterContext,
    include: &'a dyn Fn(&str) -> Option<String>,
    state: FilterState,
    out: Effective,
    /// Every name looked up so far, as [`include_key`] spells it → whether it exists.
    looked_up: BTreeMap<String, bool>,
}

/// The identity of an included file: FAT names are case-insensitive and the firmware reads
/// paths from the partition root, so `Extra.txt`, `/extra.txt` and `EXTRA.TXT` are one file.
fn include_key(name: &str) -> String {
    name.trim_start_matches('/').to_ascii_lowercase()
}

impl Evaluator<'_> {
    fn run(&mut self, lines: &[ConfigLine], depth: usize) -> Result<(), IncludeError> {
        for line in lines {
            // The firmware only reads the first 98 characters of a line (DOC-WHAT).
            let kind = if line.chars() > MAX_LINE_CHARS {
                let cut: String = line.text().chars().take(MAX_LINE_CHARS).collect();
                Cow::Owned(classify(&cut).unwrap_or(LineKind::Unknown))
            } else {
                Cow::Borrowed(line.kind())
            };
            if let LineKind::Section(name) = kind.as_ref() {
                self.state.apply(&Filter::parse(name), self.ctx);
                continue;
            }
            if !self.state.active() {
                continue;
            }
            match kind.as_ref() {
                LineKind::Setting { key, value } => {
                    self.out.settings.insert(key.clone(), value.clone());
                }
                LineKind::Initramfs(initramfs) => self.out.initramfs = Some(initramfs.clone()),
                LineKind::Include(name) => self.include(name, depth)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// `include FILE` inserts the file's lines here; filter state carries in and out, as if
    /// the text were pasted (DOC-WHAT). A missing file is ignored.
    ///
    /// Each file is followed at most once per evaluation, and at most
    /// [`MAX_INCLUDED_FILES`] are: without both, N `include` lines per file cost N^4 reads at
    /// depth 4, and the installer (PID 1) evaluates the `config.txt` of a boot archive it
    /// was handed. The firmware documentation describes `include` only as inserting the
    /// file's content (DOC-WHAT `include`; pi-boot notes section 6) and says nothing about
    /// nesting, cycles or repeats; skipping a repeat is our rule, not the firmware's
    /// [UNCERTAIN]. It differs from pasting only when a file is included twice and its lines
    /// would apply differently the second time (later filters, or settings it overrides
    /// again); the skip is named in [`Effective::skipped_includes`].
    fn include(&mut self, name: &str, depth: usize) -> Result<(), IncludeError> {
        let key = include_key(name);
        let reason = match self.looked_up.get(&key) {
            Some(true) => Some(SkipReason::AlreadyIncluded),
            // Missing a moment ago, missing now: no second lookup.
            Some(false) => Some(SkipReason::Missing),
            None if depth >= MAX_INCLUDE_DEPTH => Some(SkipReason::TooDeep),
            None => None,
        };
        if let Some(reason) = reason {
            self.skip(name, reason);
            return Ok(());
        }
        let text = (self.include)(name);
        self.looked_up.insert(key, text.is_some());
        let Some(text) = text else {
            self.skip(name, SkipReason::Missing);
            return Ok(());
        };
        if self.out.included.len() >= MAX_INCLUDED_FILES {
            return Err(IncludeError::TooManyFiles {
                file: name.to_string(),
                cap: MAX_INCLUDED_FILES,
            });
        }
        self.out.included.push(name.to_string());
        let cfg = ConfigTxt::parse_lenient(&text);
        self.run(cfg.lines(), depth + 1)
    }

    fn skip(&mut self, name: &str, reason: SkipReason) {
        self.out.skipped_includes.push(SkippedInclude {
            name: name.to_string(),
            reason,
        });
    }
}

impl ConfigTxt {
    /// Evaluate the file as the firmware would for `ctx`: filters applied top to bottom
    /// (DOC-COND), later settings override earlier ones, `include` files read through
    /// `include` (`None` = missing, ignored), nested at most [`MAX_INCLUDE_DEPTH`] deep, each
    /// file at most once.
    ///
    /// Total: at most [`MAX_INCLUDED_FILES`] files are included; one more stops the
    /// evaluation with [`IncludeError::TooManyFiles`] naming it.
    pub fn effective(
        &self,
        ctx: &FilterContext,
        include: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Effective, IncludeError> {
        let mut evaluator = Evaluator {
            ctx,
            include,
            state: FilterState::default(),
            out: Effective::default(),
            looked_up: BTreeMap::new(),
        };
        evaluator.run(self.lines(), 0)?;
        evaluator.out.finish();
        Ok(evaluator.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::Board;

    fn ctx(board: Board, tryboot: bool) -> FilterContext {
        FilterContext {
            board,
            tryboot,
            boot_partition: 1,
        }
    }

    fn no_include(_: &str) -> Option<String> {
        None
    }

    fn eval(text: &str, ctx: &FilterContext) -> Effective {
        ConfigTxt::parse(text)
            .expect("parses")
            .effective(ctx, &no_include)
            .expect("evaluates")
    }

    #[test]
    fn later_overrides_and_model_filters() {
        let text =
            "a=1\n[pi3]\na=3\n[pi4]\na=4\n[pi5]\na=5\n[all]\nb=1\n[pi400]\nb=2\n[cm4]\nb=3\n";
        for (board, a) in [(Board::Pi3, "3"), (Board::Pi4, "4"), (Board::Pi5, "5")] {
            let eff = eval(text, &ctx(board, false));
            assert_eq!(eff.get("a"), Some(a), "{board:?}");
            assert_eq!(eff.get("b"), Some("1"), "{board:?}");
        }
    }

    #[test]
    fn unknown_sections_not_applied() {
        let text = "x=0\n[pi3+]\nx=1\n[pi02]\nx=2\n[gpio4=1]\nx=3\n[EDID=A]\nx=4\n[0x12345678]\nx=5\n[board-type=0x11]\nx=6\n[HDMI:1]\nx=7\n";
        for board in [Board::Pi3, Board::Pi4, Board::Pi5] {
            assert_eq!(eval(text, &ctx(board, false)).get("x"), Some("0"));
        }
    }

    #[test]
    fn none_until_all_and_tryboot() {
        let text = "[none]\na=1\n[pi4]\na=2\n[all]\nb=1\n[tryboot]\nos_prefix=new/\n";
        let normal = eval(text, &ctx(Board::Pi4, false));
        assert_eq!(normal.get("a"), None);
        assert_eq!(normal.get("os_prefix"), None);
        let tryboot = eval(text, &ctx(Board::Pi4, true));
        assert_eq!(tryboot.get("os_prefix"), Some("new/"));
        assert_eq!(tryboot.get("b"), Some("1"));
    }

    #[test]
    fn boot_partition_filter() {
        let text = "[boot_partition=2]\nx=two\n[boot_partition=3]\nx=three\n";
        let mut c = ctx(Board::Pi5, false);
        c.boot_partition = 2;
        assert_eq!(eval(text, &c).get("x"), Some("two"));
        c.boot_partition = 3;
        assert_eq!(eval(text, &c).get("x"), Some("three"));
        c.boot_partition = 1;
        assert_eq!(eval(text, &c).get("x"), None);
    }

    #[test]
    fn initramfs_last_line_wins_and_ramfsfile_fallback() {
        let eff = eval(
            "initramfs a.img\n[pi4]\ninitramfs b.img,c.img followkernel\nramfsfile=z\n",
            &ctx(Board::Pi4, false),
        );
        assert_eq!(
            eff.initramfs(),
            Some(&InitramfsLine {
                files: vec!["b.img".into(), "c.img".into()],
                placement: InitramfsPlacement::FollowKernel
            })
        );
        let old = eval(
            "ramfsfile=a,b\nramfsaddr=0x2000000\n",
            &ctx(Board::Pi4, false),
        );
        assert_eq!(
            old.initramfs(),
            Some(&InitramfsLine {
                files: vec!["a".into(), "b".into()],
                placement: InitramfsPlacement::Address("0x2000000".into())
            })
        );
        assert_eq!(eval("a=1\n", &ctx(Board::Pi4, false)).initramfs(), None);
    }

    /// An include double over `(name, text)` pairs that counts its lookups.
    struct Files {
        files: BTreeMap<String, String>,
        lookups: std::cell::Cell<usize>,
    }

    impl Files {
        fn new(files: impl IntoIterator<Item = (String, String)>) -> Files {
            Files {
                files: files.into_iter().collect(),
                lookups: std::cell::Cell::new(0),
            }
        }

        fn eval(&self, main: &str) -> Result<Effective, IncludeError> {
            let read = |name: &str| {
                self.lookups.set(self.lookups.get() + 1);
                self.files.get(name).cloned()
            };
            ConfigTxt::parse_lenient(main).effective(&ctx(Board::Pi4, false), &read)
        }
    }

    fn file(name: &str, text: &str) -> (String, String) {
        (name.to_string(), text.to_string())
    }

    fn skipped(eff: &Effective) -> Vec<(&str, SkipReason)> {
        eff.skipped_includes()
            .iter()
            .map(|s| (s.name.as_str(), s.reason))
            .collect()
    }

    #[test]
    fn include_inline_missing_and_depth_limit() {
        let files = |name: &str| -> Option<String> {
            match name {
                "extra.txt" => Some("[pi4]\nx=from_extra\n".to_string()),
                _ => None,
            }
        };
        let cfg =
            ConfigTxt::parse("include extra.txt\ny=after\ninclude missing.txt\n").expect("parses");
        let pi4 = cfg
            .effective(&ctx(Board::Pi4, false), &files)
            .expect("evaluates");
        assert_eq!(pi4.get("x"), Some("from_extra"));
        // The [pi4] filter from the included file carries on after it.
        assert_eq!(pi4.get("y"), Some("after"));
        let pi3 = cfg
            .effective(&ctx(Board::Pi3, false), &files)
            .expect("evaluates");
        assert_eq!(pi3.get("x"), None);
        assert_eq!(pi3.get("y"), None);
        assert_eq!(pi4.included_files(), ["extra.txt"]);
        assert_eq!(skipped(&pi4), [("missing.txt", SkipReason::Missing)]);

        // d1 → d2 → d3 → d4 → d5: the fifth level is not read.
        let chain = Files::new((1..=5).map(|i| {
            file(
                &format!("d{i}.txt"),
                &format!("n={i}\ninclude d{}.txt\n", i + 1),
            )
        }));
        let eff = chain.eval("include d1.txt\n").expect("evaluates");
        assert_eq!(eff.get("n"), Some("4"));
        assert_eq!(eff.included_files().len(), MAX_INCLUDE_DEPTH);
        assert_eq!(skipped(&eff), [("d5.txt", SkipReason::TooDeep)]);
        assert_eq!(chain.lookups.get(), MAX_INCLUDE_DEPTH);
    }

    #[test]
    fn an_include_cycle_terminates_with_each_file_read_once() {
        let files = Files::new([
            file("a.txt", "a=1\ninclude b.txt\ninclude a.txt\n"),
            file("b.txt", "b=1\ninclude A.TXT\ninclude b.txt\n"),
        ]);
        let eff = files
            .eval("include a.txt\ninclude /a.txt\nmain=1\n")
            .expect("evaluates");
        assert_eq!(
            (eff.get("a"), eff.get("b"), eff.get("main")),
            (Some("1"), Some("1"), Some("1"))
        );
        assert_eq!(eff.included_files(), ["a.txt", "b.txt"]);
        assert_eq!(
            skipped(&eff),
            [
                ("A.TXT", SkipReason::AlreadyIncluded),
                ("b.txt", SkipReason::AlreadyIncluded),
                ("a.txt", SkipReason::AlreadyIncluded),
                ("/a.txt", SkipReason::AlreadyIncluded),
            ]
        );
        assert_eq!(files.lookups.get(), 2);
    }

    #[test]
    fn a_repeated_include_is_skipped_not_pasted_again() {
        let files = Files::new([file("extra.txt", "x=extra\n")]);
        // Pasting extra.txt a second time would end with x=extra; the second include is
        // skipped and says so.
        let eff = files
            .eval("include extra.txt\nx=main\ninclude extra.txt\ninclude gone.txt\ninclude gone.txt\n")
            .expect("evaluates");
        assert_eq!(eff.get("x"), Some("main"));
        assert_eq!(
            skipped(&eff),
            [
                ("extra.txt", SkipReason::AlreadyIncluded),
                ("gone.txt", SkipReason::Missing),
                ("gone.txt", SkipReason::Missing),
            ]
        );
        // A missing file is looked up once, too.
        assert_eq!(files.lookups.get(), 2);
    }

    #[test]
    fn a_100_line_fan_out_costs_one_read_per_file() {
        // 30 files; config.txt and every file include all of them, 100 include lines each.
        // Followed as pasted text, that is about 100^4 reads at depth 4.
        let names: Vec<String> = (0..30).map(|i| format!("f{i:02}.txt")).collect();
        let lines: String = (0..100)
            .map(|i| format!("include {}\n", names[i % names.len()]))
            .collect();
        let files = Files::new(names.iter().map(|n| file(n, &format!("{lines}last={n}\n"))));
        let started = std::time::Instant::now();
        let eff = files.eval(&lines).expect("evaluates");
        println!(
            "fan-out: {} lookups in {:?}",
            files.lookups.get(),
            started.elapsed()
        );
        assert_eq!(files.lookups.get(), 30);
        assert_eq!(eff.included_files().len(), 30);
        assert!(eff
            .skipped_includes()
            .iter()
            .all(|s| s.reason != SkipReason::Missing));
        // Every include line was seen once: 100 in config.txt and 100 in each file.
        assert_eq!(
            eff.included_files().len() + eff.skipped_includes().len(),
            3100
        );
    }

    #[test]
    fn more_than_the_cap_of_included_files_stops_with_an_error() {
        // Three levels of 100 distinct files each: 1 010 100 files if all were followed.
        let level = |l: usize, text: &dyn Fn(usize) -> String| -> Vec<(String, String)> {
            (0..100)
                .map(|i| (format!("l{l}_{i:02}.txt"), text(i)))
                .collect()
        };
        let includes = |l: usize| -> String {
            (0..100)
                .map(|i| format!("include l{l}_{i:02}.txt\n"))
                .collect()
        };
        let mut all = level(1, &|_| includes(2));
        all.extend(level(2, &|_| includes(3)));
        all.extend(level(3, &|i| format!("x={i}\n")));
        let files = Files::new(all);
        let err = files.eval(&includes(1)).expect_err("over the cap");
        // Depth first: l1_00, l2_00, then l3_00 ..= l3_29 are the 32; l3_30 is one too many.
        assert_eq!(
            err,
            IncludeError::TooManyFiles {
                file: "l3_30.txt".into(),
                cap: MAX_INCLUDED_FILES
            }
        );
        assert_eq!(files.lookups.get(), MAX_INCLUDED_FILES + 1);
        let message = err.to_string();
        assert!(
            message.contains("l3_30.txt") && message.contains("more than 32 files"),
            "{message}"
        );

        // Exactly the cap is fine.
        let flat = Files::new((0..MAX_INCLUDED_FILES).map(|i| file(&format!("f{i}"), "y=1\n")));
        let main: String = (0..MAX_INCLUDED_FILES)
            .map(|i| format!("include f{i}\n"))
            .collect();
        let eff = flat.eval(&main).expect("the cap is allowed");
        assert_eq!(eff.included_files().len(), MAX_INCLUDED_FILES);
    }

    #[test]
    fn include_under_inactive_filter_is_not_read() {
        let files = |_: &str| -> Option<String> { Some("x=1\n".to_string()) };
        let cfg = ConfigTxt::parse("[pi5]\ninclude extra.txt\n").expect("parses");
        let eff = cfg
            .effective(&ctx(Board::Pi4, false), &files)
            .expect("evaluates");
        assert_eq!(eff.get("x"), None);
        assert!(eff.included_files().is_empty());
    }

    #[test]
    fn long_line_value_truncated_to_98_chars() {
        let value = "y".repeat(100);
        let eff = eval(&format!("cmdline={value}\n"), &ctx(Board::Pi4, false));
        assert_eq!(eff.get("cmdline"), Some("y".repeat(90).as_str()));
    }

    #[test]
    fn flag_parsing() {
        let eff = eval(
            "arm_64bit=1\nauto_initramfs=0\nodd=yes\n",
            &ctx(Board::Pi3, false),
        );
        assert_eq!(eff.flag("arm_64bit"), Some(true));
        assert_eq!(eff.flag("auto_initramfs"), Some(false));
        assert_eq!(eff.flag("odd"), None);
        assert_eq!(eff.flag("missing"), None);
    }
}
