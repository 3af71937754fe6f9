//! Kernel-module closure from depmod's `modules.dep`.
//!
//! Each line of `modules.dep` is `path: dep dep ...`, paths relative to
//! `/lib/modules/$KVER`, ending in `.ko` or a compressed `.ko.xz`, `.ko.zst`, `.ko.gz`.
//! Module names are file stems with `-` and `_` equivalent, as the kernel and kmod treat them.

use std::collections::{BTreeMap, BTreeSet};

/// Suffixes of module files, longest first so `.ko.xz` is not read as `.ko`.
const SUFFIXES: [&str; 4] = [".ko.zst", ".ko.xz", ".ko.gz", ".ko"];

/// What went wrong reading `modules.dep` or resolving modules.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModulesError {
    /// A line has no `:` separating the module from its dependencies.
    #[error(
        "modules.dep line {line}: expected \"path.ko: dependencies\", found no ':' in {text:?}"
    )]
    MissingColon {
        /// 1-based line number.
        line: usize,
        /// The line's text.
        text: String,
    },
    /// A line has nothing before the `:`.
    #[error("modules.dep line {line}: no module path before ':'")]
    EmptyPath {
        /// 1-based line number.
        line: usize,
    },
    /// A path does not end in `.ko`, `.ko.xz`, `.ko.zst` or `.ko.gz`.
    #[error("modules.dep line {line}: {path:?} is not a module file (expected .ko, .ko.xz, .ko.zst or .ko.gz)")]
    NotAModule {
        /// 1-based line number.
        line: usize,
        /// The offending path.
        path: String,
    },
    /// A module has a second line of its own.
    #[error("modules.dep line {line}: module {name} is listed again (first on line {first_line})")]
    DuplicateModule {
        /// 1-based line number of the repeat.
        line: usize,
        /// Line of the first listing.
        first_line: usize,
        /// Normalized module name.
        name: String,
    },
    /// Two different paths give the same module name.
    #[error("modules.dep line {line}: {path:?} and {other:?} are both module {name}")]
    ConflictingPath {
        /// 1-based line number where the second path appeared.
        line: usize,
        /// Normalized module name.
        name: String,
        /// The path on this line.
        path: String,
        /// The path seen before.
        other: String,
    },
    /// A wanted module is neither in `modules.dep` nor built in.
    #[error("module {name} is not in modules.dep and not listed as built in (modules.builtin)")]
    UnknownModule {
        /// The name as requested.
        name: String,
    },
    /// The dependencies loop.
    #[error("modules.dep has a dependency cycle: {}", cycle.join(" -> "))]
    Cycle {
        /// Module names around the cycle, first and last the same.
        cycle: Vec<String>,
    },
}

/// A module name with `-` mapped to `_` (the kernel treats them as the same character).
#[must_use]
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The normalized module name of a path or file name:
/// `kernel/drivers/mmc/host/sdhci-iproc.ko.xz` → `sdhci_iproc`.
/// A bare name (`sdhci-iproc`) is normalized as it is.
#[must_use]
pub fn name_of(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = SUFFIXES
        .iter()
        .find_map(|suffix| file.strip_suffix(suffix))
        .unwrap_or(file);
    normalize(stem)
}

fn is_module_path(path: &str) -> bool {
    SUFFIXES
        .iter()
        .any(|suffix| path.len() > suffix.len() && path.ends_with(suffix))
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Module {
    path: String,
    /// Normalized names, in `modules.dep` order.
    deps: Vec<String>,
    /// The line that lists this module, or `None` if it was only seen as a dependency.
    line: Option<usize>,
}

/// The parsed `modules.dep`, plus the names from `modules.builtin`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleDeps {
    modules: BTreeMap<String, Module>,
    builtin: BTreeSet<String>,
}

impl ModuleDeps {
    /// Parse the text of `modules.dep`. Blank lines are skipped; CRLF is accepted.
    /// A dependency that has no line of its own is kept as a module without dependencies
    /// (depmod always writes one, but its path is known either way).
    ///
    /// # Errors
    /// A malformed line, with its 1-based number.
    pub fn parse(text: &str) -> Result<ModuleDeps, ModulesError> {
        let mut deps = ModuleDeps::default();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                continue;
            }
            let Some((path, rest)) = trimmed.split_once(':') else {
                return Err(ModulesError::MissingColon {
                    line,
                    text: raw.to_owned(),
                });
            };
            let path = path.trim();
            if path.is_empty() {
                return Err(ModulesError::EmptyPath { line });
            }
            let mut dep_names = Vec::new();
            for dep in rest.split_whitespace() {
                dep_names.push(deps.note(dep, line, None)?);
            }
            deps.note(path, line, Some(dep_names))?;
        }
        Ok(deps)
    }

    /// Record `path`; with `own_deps`, as the module that `line` lists. Returns its name.
    fn note(
        &mut self,
        path: &str,
        line: usize,
        own_deps: Option<Vec<String>>,
    ) -> Result<String, ModulesError> {
        if !is_module_path(path) {
            return Err(ModulesError::NotAModule {
                line,
                path: path.to_owned(),
            });
        }
        let name = name_of(path);
        if let Some(existing) = self.modules.get(&name) {
            if existing.path != path {
                return Err(ModulesError::ConflictingPath {
                    line,
                    name,
                    path: path.to_owned(),
                    other: existing.path.clone(),
                });
            }
            if let (Some(first_line), Some(_)) = (existing.line, &own_deps) {
                return Err(ModulesError::DuplicateModule {
                    line,
                    first_line,
                    name,
                });
            }
        }
        let listed = own_deps.is_some();
        let module = self.modules.entry(name.clone()).or_insert_with(|| Module {
            path: path.to_owned(),
            deps: Vec::new(),
            line: None,
        });
        if listed {
            module.line = Some(line);
            module.deps = own_deps.unwrap_or_default();
        }
        Ok(name)
    }

    /// Add the built-in modules: the text of `modules.builtin`, one path per line.
    /// Wanted modules that are built in need no file and are skipped by [`Self::closure`].
    #[must_use]
    pub fn with_builtin(mut self, modules_builtin_text: &str) -> Self {
        self.builtin.extend(
            modules_builtin_text
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .map(name_of),
        );
        self
    }

    /// Whether `name` (any spelling, or a path) is a loadable module in `modules.dep`.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.modules.contains_key(&name_of(name))
    }

    /// Whether `name` (any spelling, or a path) is listed as built in.
    #[must_use]
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&name_of(name))
    }

    /// The path of module `name` as written in `modules.dep`.
    #[must_use]
    pub fn path_of(&self, name: &str) -> Option<&str> {
        self.modules.get(&name_of(name)).map(|m| m.path.as_str())
    }

    /// The `modules.dep` paths of the wanted modules and all they depend on, each once, in
    /// load order: every module after its dependencies. Wanted names may use `-` or `_`
    /// (or be paths). A wanted module that is built in is skipped; a loadable one is preferred
    /// if both are listed. The order depends only on the input: `wanted` order, then
    /// `modules.dep` dependency order.
    ///
    /// # Errors
    /// A wanted module that is neither loadable nor built in, or a dependency cycle.
    pub fn closure(&self, wanted: &[&str]) -> Result<Vec<String>, ModulesError> {
        let mut walk = Walk {
            deps: self,
            state: BTreeMap::new(),
            stack: Vec::new(),
            order: Vec::new(),
        };
        for want in wanted {
            let name = name_of(want);
            if self.modules.contains_key(&name) {
                walk.visit(&name)?;
            } else if !self.builtin.contains(&name) {
                return Err(ModulesError::UnknownModule {
                    name: (*want).to_owned(),
                });
            }
        }
        Ok(walk.order)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    InProgress,
    Done,
}

/// Depth-first post-order walk; `stack` holds the current path for cycle reports.
struct Walk<'a> {
    deps: &'a ModuleDeps,
    state: BTreeMap<&'a str, Mark>,
    stack: Vec<&'a str>,
    order: Vec<String>,
}

impl<'a> Walk<'a> {
    fn visit(&mut self, name: &str) -> Result<(), ModulesError> {
        // Every dependency name was recorded as a module by `parse`.
        let Some((key, module)) = self.deps.modules.get_key_value(name) else {
            return Err(ModulesError::UnknownModule {
                name: name.to_owned(),
            });
        };
        match self.state.get(key.as_str()) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::InProgress) => {
                let start = self.stack.iter().position(|n| *n == key).unwrap_or(0);
                let mut cycle: Vec<String> = self.stack[start..]
                    .iter()
                    .map(|n| (*n).to_owned())
                    .collect();
                cycle.push(key.clone());
                return Err(ModulesError::Cycle { cycle });
            }
            None => {}
        }
        self.state.insert(key, Mark::InProgress);
        self.stack.push(key);
        for dep in &module.deps {
            self.visit(dep)?;
        }
        self.stack.pop();
        self.state.insert(key, Mark::Done);
        self.order.push(module.path.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like Debian arm64's modules.dep (depmod lists transitive dependencies).
    const DEP: &str = "\
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko kernel/crypto/crc32c_generic.ko
kernel/lib/crc16.ko:
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko: kernel/crypto/crc32c_generic.ko
kernel/crypto/crc32c_generic.ko:

kernel/fs/fat/vfat.ko.xz: kernel/fs/fat/fat.ko.xz
kernel/fs/fat/fat.ko.xz:
kernel/fs/nls/nls_cp437.ko.zst:
kernel/drivers/mmc/host/sdhci-iproc.ko.gz: kernel/drivers/mmc/host/sdhci-pltfm.ko.gz kernel/drivers/mmc/host/sdhci.ko.gz
kernel/drivers/mmc/host/sdhci-pltfm.ko.gz: kernel/drivers/mmc/host/sdhci.ko.gz
kernel/drivers/mmc/host/sdhci.ko.gz:
kernel/drivers/watchdog/bcm2835_wdt.ko:
";

    fn deps() -> ModuleDeps {
        ModuleDeps::parse(DEP).expect("fixture parses")
    }

    fn position(order: &[String], name: &str) -> usize {
        order
            .iter()
            .position(|p| name_of(p) == name)
            .unwrap_or_else(|| panic!("{name} missing from {order:?}"))
    }

    #[test]
    fn names() {
        assert_eq!(name_of("kernel/fs/ext4/ext4.ko"), "ext4");
        assert_eq!(
            name_of("kernel/drivers/mmc/host/sdhci-iproc.ko.xz"),
            "sdhci_iproc"
        );
        assert_eq!(name_of("a/b-c.ko.zst"), "b_c");
        assert_eq!(name_of("x.ko.gz"), "x");
        assert_eq!(name_of("bcm2835-wdt"), "bcm2835_wdt");
        assert_eq!(normalize("sdhci-iproc"), "sdhci_iproc");
    }

    #[test]
    fn closure_exact_order_with_shared_deps() {
        let order = deps().closure(&["ext4", "jbd2"]).expect("closure");
        assert_eq!(
            order,
            [
                "kernel/lib/crc16.ko",
                "kernel/fs/mbcache.ko",
                "kernel/crypto/crc32c_generic.ko",
                "kernel/fs/jbd2/jbd2.ko",
                "kernel/fs/ext4/ext4.ko",
            ]
        );
    }

    #[test]
    fn shared_deps_appear_once_and_before_dependents() {
        let order = deps()
            .closure(&["sdhci_iproc", "vfat", "ext4", "sdhci-pltfm", "nls_cp437"])
            .expect("closure");
        let unique: BTreeSet<&String> = order.iter().collect();
        assert_eq!(unique.len(), order.len(), "no repeats in {order:?}");
        assert_eq!(order.len(), 11);
        assert!(position(&order, "sdhci") < position(&order, "sdhci_pltfm"));
        assert!(position(&order, "sdhci_pltfm") < position(&order, "sdhci_iproc"));
        assert!(position(&order, "fat") < position(&order, "vfat"));
        assert!(position(&order, "crc32c_generic") < position(&order, "jbd2"));
        assert!(position(&order, "jbd2") < position(&order, "ext4"));
        assert!(order.contains(&"kernel/fs/fat/vfat.ko.xz".to_owned()));
        assert!(order.contains(&"kernel/fs/nls/nls_cp437.ko.zst".to_owned()));
    }

    #[test]
    fn deps_first_even_when_modules_dep_lists_dependents_first() {
        let text = "c.ko: b.ko a.ko\nb.ko: a.ko\na.ko:\n";
        let order = ModuleDeps::parse(text)
            .expect("parse")
            .closure(&["c"])
            .expect("closure");
        assert_eq!(order, ["a.ko", "b.ko", "c.ko"]);
    }

    #[test]
    fn dash_and_underscore_are_the_same() {
        let d = deps();
        let a = d.closure(&["sdhci-iproc"]).expect("dash");
        let b = d.closure(&["sdhci_iproc"]).expect("underscore");
        assert_eq!(a, b);
        assert_eq!(
            a.last().map(String::as_str),
            Some("kernel/drivers/mmc/host/sdhci-iproc.ko.gz")
        );
        assert_eq!(
            d.closure(&["bcm2835-wdt"]).expect("wdt"),
            ["kernel/drivers/watchdog/bcm2835_wdt.ko"]
        );
        // Mixed spellings inside modules.dep itself.
        let mixed = ModuleDeps::parse("x/foo-bar.ko: x/baz_qux.ko\nx/baz-qux.ko:\n");
        assert!(matches!(
            mixed,
            Err(ModulesError::ConflictingPath { line: 2, .. })
        ));
    }

    #[test]
    fn closure_is_stable() {
        let d = deps();
        let wanted = ["vfat", "ext4", "sdhci-iproc"];
        assert_eq!(
            d.closure(&wanted).expect("first"),
            d.closure(&wanted).expect("second")
        );
        assert_eq!(
            d.closure(&["ext4", "ext4", "ext4.ko"])
                .expect("repeats")
                .len(),
            5
        );
    }

    #[test]
    fn missing_module_is_named() {
        let err = deps()
            .closure(&["ext4", "virtio-blk"])
            .expect_err("missing");
        assert_eq!(
            err,
            ModulesError::UnknownModule {
                name: "virtio-blk".into()
            }
        );
        assert!(err.to_string().contains("virtio-blk"), "{err}");
    }

    #[test]
    fn builtin_modules_are_skipped() {
        let d = deps().with_builtin(
            "kernel/drivers/virtio/virtio.ko\nkernel/drivers/block/virtio_blk.ko\n\nkernel/drivers/mmc/core/mmc_core.ko\n",
        );
        assert!(d.is_builtin("virtio-blk"));
        let order = d
            .closure(&["virtio-blk", "mmc_core", "vfat"])
            .expect("closure");
        assert_eq!(
            order,
            ["kernel/fs/fat/fat.ko.xz", "kernel/fs/fat/vfat.ko.xz"]
        );
        assert!(d.closure(&["virtio_net"]).is_err());
    }

    #[test]
    fn cycle_is_reported() {
        let text = "a.ko: b.ko\nb.ko: c.ko\nc.ko: a.ko\nd.ko: a.ko\n";
        let err = ModuleDeps::parse(text)
            .expect("parse")
            .closure(&["d"])
            .expect_err("cycle");
        assert_eq!(
            err,
            ModulesError::Cycle {
                cycle: vec!["a".into(), "b".into(), "c".into(), "a".into()]
            }
        );
        assert_eq!(
            err.to_string(),
            "modules.dep has a dependency cycle: a -> b -> c -> a"
        );
        let self_loop = ModuleDeps::parse("a.ko: a.ko\n")
            .expect("parse")
            .closure(&["a"]);
        assert!(matches!(self_loop, Err(ModulesError::Cycle { .. })));
    }

    #[test]
    fn parse_errors_carry_line_numbers() {
        let missing_colon = ModuleDeps::parse("a.ko:\n\nb.ko c.ko\n").expect_err("no colon");
        assert!(matches!(
            missing_colon,
            ModulesError::MissingColon { line: 3, .. }
        ));
        assert!(
            missing_colon.to_string().starts_with("modules.dep line 3:"),
            "{missing_colon}"
        );

        let not_module = ModuleDeps::parse("a.ko:\nb.ko: c.o\n").expect_err("not a module");
        assert_eq!(
            not_module,
            ModulesError::NotAModule {
                line: 2,
                path: "c.o".into()
            }
        );
        assert_eq!(
            ModuleDeps::parse(": a.ko").expect_err("empty"),
            ModulesError::EmptyPath { line: 1 }
        );
        assert_eq!(
            ModuleDeps::parse("a.ko:\nb.ko:\na.ko: b.ko\n").expect_err("dup"),
            ModulesError::DuplicateModule {
                line: 3,
                first_line: 1,
                name: "a".into()
            }
        );
    }

    #[test]
    fn dependency_without_own_line_is_a_leaf_and_crlf_is_fine() {
        let d = ModuleDeps::parse("b.ko: a.ko\r\n").expect("parse");
        assert_eq!(d.closure(&["b"]).expect("closure"), ["a.ko", "b.ko"]);
        assert_eq!(d.path_of("a"), Some("a.ko"));
        assert!(d.contains("b") && !d.contains("c"));
    }
}
