//! Conditional filters of config.txt (`[all]`, `[pi4]`, `[tryboot]`, ...) and their
//! evaluation (DOC-COND).

use crate::board::Board;

/// What the firmware knows when it evaluates config.txt filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterContext {
    /// The board model.
    pub board: Board,
    /// Whether this is a tryboot boot (DOC-FLOW).
    pub tryboot: bool,
    /// The partition actually booted, for `[boot_partition=N]` (RN-2712 2025-02-11).
    pub boot_partition: u8,
}

/// One section header, classified by filter type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `[all]`: resets every filter.
    All,
    /// `[none]`: disables the following lines until the next `[all]`.
    None,
    /// A model filter such as `[pi4]`, `[pi3+]`, `[cm4]`, `[pi02]` (lowercased name).
    Model(String),
    /// `[tryboot]`.
    Tryboot,
    /// `[boot_partition=N]`.
    BootPartition(u8),
    /// Any filter we cannot evaluate: `[gpioN=x]`, `[EDID=...]`, serial `[0x...]`,
    /// `[HDMI:n]`, `[board-type=...]`, EEPROM-only or expression filters, unknown names.
    Unevaluable(String),
}

impl Filter {
    /// Classify the text between `[` and `]` (surrounding spaces ignored, case-insensitive).
    pub fn parse(inner: &str) -> Filter {
        let name = inner.trim().to_ascii_lowercase();
        match name.as_str() {
            "all" => return Filter::All,
            "none" => return Filter::None,
            "tryboot" => return Filter::Tryboot,
            _ => {}
        }
        if let Some(number) = name.strip_prefix("boot_partition=") {
            if let Ok(n) = number.trim().parse::<u8>() {
                return Filter::BootPartition(n);
            }
        }
        if is_model_name(&name) {
            return Filter::Model(name);
        }
        Filter::Unevaluable(name)
    }
}

/// Model filters look like `pi4`, `pi3+`, `pi400`, `pi0w`, `cm4s`, `cm5` (DOC-COND list).
fn is_model_name(name: &str) -> bool {
    let rest = name.strip_prefix("pi").or_else(|| name.strip_prefix("cm"));
    match rest {
        Some(rest) => {
            rest.starts_with(|c: char| c.is_ascii_digit())
                && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '+')
        }
        None => false,
    }
}

/// The running filter state while walking config.txt lines top to bottom (DOC-COND: filters
/// of the same type replace each other, different types AND together, `[all]` resets).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterState {
    none: bool,
    model: Option<bool>,
    tryboot: Option<bool>,
    boot_partition: Option<bool>,
    /// Set by any filter we cannot evaluate. Safe reading: such filters never match, so the
    /// lines under them are not applied (a setting meant for a GPIO state or a specific
    /// display must not leak into k8r's model). All unevaluable filter types are "false", so
    /// one sticky flag is equivalent to one slot per type; only `[all]` clears it.
    unevaluable: bool,
}

impl FilterState {
    /// Apply one header.
    pub fn apply(&mut self, filter: &Filter, ctx: &FilterContext) {
        match filter {
            Filter::All => *self = FilterState::default(),
            Filter::None => self.none = true,
            Filter::Model(name) => self.model = Some(name == ctx.board.model_filter()),
            Filter::Tryboot => self.tryboot = Some(ctx.tryboot),
            Filter::BootPartition(n) => self.boot_partition = Some(*n == ctx.boot_partition),
            Filter::Unevaluable(_) => self.unevaluable = true,
        }
    }

    /// Whether lines at this point apply.
    pub fn active(&self) -> bool {
        !self.none
            && !self.unevaluable
            && self.model.unwrap_or(true)
            && self.tryboot.unwrap_or(true)
            && self.boot_partition.unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(board: Board, tryboot: bool) -> FilterContext {
        FilterContext {
            board,
            tryboot,
            boot_partition: 2,
        }
    }

    fn active_after(headers: &[&str], ctx: &FilterContext) -> bool {
        let mut state = FilterState::default();
        for h in headers {
            state.apply(&Filter::parse(h), ctx);
        }
        state.active()
    }

    #[test]
    fn classify() {
        assert_eq!(Filter::parse(" ALL "), Filter::All);
        assert_eq!(Filter::parse("pi3+"), Filter::Model("pi3+".into()));
        assert_eq!(Filter::parse("pi02"), Filter::Model("pi02".into()));
        assert_eq!(Filter::parse("cm4"), Filter::Model("cm4".into()));
        assert_eq!(Filter::parse("boot_partition=3"), Filter::BootPartition(3));
        for other in [
            "gpio4=1",
            "EDID=VSC-TD2220",
            "0x12345678",
            "HDMI:1",
            "board-type=0x11",
            "partition=62",
            "pix",
            "boot_partition=x",
        ] {
            assert!(
                matches!(Filter::parse(other), Filter::Unevaluable(_)),
                "{other}"
            );
        }
    }

    #[test]
    fn evaluation_table() {
        let pi4 = ctx(Board::Pi4, false);
        let pi4_try = ctx(Board::Pi4, true);
        let pi3 = ctx(Board::Pi3, false);
        let cases: &[(&[&str], &FilterContext, bool)] = &[
            (&[], &pi4, true),
            (&["pi4"], &pi4, true),
            (&["pi4"], &pi3, false),
            (&["pi3"], &pi3, true),
            (&["pi3+"], &pi3, false),
            (&["pi400"], &pi4, false),
            (&["cm4"], &pi4, false),
            (&["pi5"], &pi4, false),
            // same type replaces
            (&["pi3", "pi4"], &pi4, true),
            (&["pi4", "pi3"], &pi4, false),
            // different types AND
            (&["pi4", "tryboot"], &pi4, false),
            (&["pi4", "tryboot"], &pi4_try, true),
            (&["pi3", "tryboot"], &pi4_try, false),
            // [all] resets
            (&["pi3", "all"], &pi4, true),
            (&["none"], &pi4, false),
            (&["none", "pi4"], &pi4, false),
            (&["none", "all"], &pi4, true),
            // unevaluable never match, until [all]
            (&["gpio4=1"], &pi4, false),
            (&["gpio4=1", "pi4"], &pi4, false),
            (&["EDID=X", "all"], &pi4, true),
            (&["board-type=0x11"], &pi4, false),
            (&["boot_partition=2"], &pi4, true),
            (&["boot_partition=3"], &pi4, false),
            (&["boot_partition=3", "boot_partition=2"], &pi4, true),
        ];
        for (headers, ctx, expected) in cases {
            assert_eq!(
                active_after(headers, ctx),
                *expected,
                "{headers:?} on {ctx:?}"
            );
        }
    }
}
