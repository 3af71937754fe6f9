//! Evaluation of config.txt: filters, includes and overrides → the settings the firmware uses.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::config_txt::{
    classify, split_files, ConfigLine, ConfigTxt, InitramfsLine, InitramfsPlacement, LineKind,
    MAX_LINE_CHARS,
};
use crate::filter::{Filter, FilterContext, FilterState};

/// How deep `include` may nest (the main file is depth 0). Stops include loops.
pub const MAX_INCLUDE_DEPTH: usize = 4;

/// The settings that apply for one board/boot after filter evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Effective {
    settings: BTreeMap<String, String>,
    initramfs: Option<InitramfsLine>,
    included: Vec<String>,
    skipped_includes: Vec<String>,
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

    /// `include` lines not followed: file missing or nesting deeper than
    /// [`MAX_INCLUDE_DEPTH`].
    pub fn skipped_includes(&self) -> &[String] {
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
}

impl Evaluator<'_> {
    fn run(&mut self, lines: &[ConfigLine], depth: usize) {
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
                LineKind::Include(name) => self.include(name, depth),
                _ => {}
            }
        }
    }

    /// `include FILE` inserts the file's lines here; filter state carries in and out, as if
    /// the text were pasted (DOC-WHAT). A missing file is ignored.
    fn include(&mut self, name: &str, depth: usize) {
        if depth >= MAX_INCLUDE_DEPTH {
            self.out.skipped_includes.push(name.to_string());
            return;
        }
        match (self.include)(name) {
            Some(text) => {
                self.out.included.push(name.to_string());
                let cfg = ConfigTxt::parse_lenient(&text);
                self.run(cfg.lines(), depth + 1);
            }
            None => self.out.skipped_includes.push(name.to_string()),
        }
    }
}

impl ConfigTxt {
    /// Evaluate the file as the firmware would for `ctx`: filters applied top to bottom
    /// (DOC-COND), later settings override earlier ones, `include` files read through
    /// `include` (`None` = missing, ignored) and nested at most [`MAX_INCLUDE_DEPTH`] deep.
    pub fn effective(
        &self,
        ctx: &FilterContext,
        include: &dyn Fn(&str) -> Option<String>,
    ) -> Effective {
        let mut evaluator = Evaluator {
            ctx,
            include,
            state: FilterState::default(),
            out: Effective::default(),
        };
        evaluator.run(self.lines(), 0);
        evaluator.out.finish();
        evaluator.out
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

    #[test]
    fn include_inline_missing_and_depth_limit() {
        let files = |name: &str| -> Option<String> {
            match name {
                "extra.txt" => Some("[pi4]\nx=from_extra\n".to_string()),
                "loop.txt" => Some("n=deep\ninclude loop.txt\n".to_string()),
                _ => None,
            }
        };
        let cfg =
            ConfigTxt::parse("include extra.txt\ny=after\ninclude missing.txt\n").expect("parses");
        let pi4 = cfg.effective(&ctx(Board::Pi4, false), &files);
        assert_eq!(pi4.get("x"), Some("from_extra"));
        // The [pi4] filter from the included file carries on after it.
        assert_eq!(pi4.get("y"), Some("after"));
        let pi3 = cfg.effective(&ctx(Board::Pi3, false), &files);
        assert_eq!(pi3.get("x"), None);
        assert_eq!(pi3.get("y"), None);
        assert_eq!(pi4.included_files(), ["extra.txt"]);
        assert_eq!(pi4.skipped_includes(), ["missing.txt"]);

        let looping = ConfigTxt::parse("include loop.txt\n").expect("parses");
        let eff = looping.effective(&ctx(Board::Pi4, false), &files);
        assert_eq!(eff.get("n"), Some("deep"));
        assert_eq!(eff.included_files().len(), MAX_INCLUDE_DEPTH);
        assert_eq!(eff.skipped_includes(), ["loop.txt"]);
    }

    #[test]
    fn include_under_inactive_filter_is_not_read() {
        let files = |_: &str| -> Option<String> { Some("x=1\n".to_string()) };
        let cfg = ConfigTxt::parse("[pi5]\ninclude extra.txt\n").expect("parses");
        let eff = cfg.effective(&ctx(Board::Pi4, false), &files);
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
