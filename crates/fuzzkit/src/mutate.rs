//! Input strategies: seed files mutated the way byte fuzzers do (bit flips, dictionary tokens
//! inserted, chunks deleted, repeated or spliced from another seed), text built from a
//! dictionary, and plain random bytes. Shrinking goes back towards the seed and fewer edits,
//! so a finding comes out as a real input with one or two changes.

use std::fmt;
use std::ops::Deref;
use std::path::Path;

use proptest::prelude::*;
use proptest::sample::select;

/// The largest input a mutation produces (longer results are cut): bounds the work per case.
const MAX_LEN: usize = 64 * 1024;

/// One fuzz input. Its `Debug` form is a byte-string literal, ready to paste into a
/// regression test.
#[derive(Clone, PartialEq, Eq)]
pub struct Input(pub Vec<u8>);

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

impl Deref for Input {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Input {
    /// The input as text, invalid UTF-8 replaced (most parsers take `&str`).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

/// The seed files of `target`: every file in `<crate_dir>/fuzz/<target>/`, by name.
///
/// # Panics
/// When the directory is missing or empty: a target's seeds are part of the repository.
pub fn corpus(crate_dir: &str, target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(crate_dir).join("fuzz").join(target);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let seeds: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect();
    assert!(!seeds.is_empty(), "{}: no seed files", dir.display());
    seeds
}

#[derive(Debug, Clone)]
enum Edit {
    Flip {
        at: usize,
        bit: u8,
    },
    Set {
        at: usize,
        byte: u8,
    },
    Token {
        at: usize,
        token: usize,
    },
    Bytes {
        at: usize,
        bytes: Vec<u8>,
    },
    Delete {
        at: usize,
        len: usize,
    },
    Repeat {
        at: usize,
        len: usize,
        times: u8,
    },
    Splice {
        at: usize,
        seed: usize,
        from: usize,
        len: usize,
    },
    Truncate {
        at: usize,
    },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        1 => (any::<usize>(), 0..8u8).prop_map(|(at, bit)| Edit::Flip { at, bit }),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Set { at, byte }),
        4 => (any::<usize>(), any::<usize>()).prop_map(|(at, token)| Edit::Token { at, token }),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Edit::Bytes { at, bytes }),
        2 => (any::<usize>(), 1..64usize).prop_map(|(at, len)| Edit::Delete { at, len }),
        1 => (any::<usize>(), 1..128usize, 1..64u8)
            .prop_map(|(at, len, times)| Edit::Repeat { at, len, times }),
        1 => (any::<usize>(), any::<usize>(), any::<usize>(), 1..256usize)
            .prop_map(|(at, seed, from, len)| Edit::Splice { at, seed, from, len }),
        1 => any::<usize>().prop_map(|at| Edit::Truncate { at }),
    ]
}

fn apply(data: &mut Vec<u8>, edit: &Edit, seeds: &[Vec<u8>], dict: &[Vec<u8>]) {
    let pos = |at: usize, len: usize| at % (len + 1);
    match edit {
        Edit::Flip { at, bit } => {
            if !data.is_empty() {
                let i = at % data.len();
                data[i] ^= 1 << bit;
            }
        }
        Edit::Set { at, byte } => {
            if !data.is_empty() {
                let i = at % data.len();
                data[i] = *byte;
            }
        }
        Edit::Token { at, token } => {
            if !dict.is_empty() {
                let i = pos(*at, data.len());
                let t = &dict[token % dict.len()];
                data.splice(i..i, t.iter().copied());
            }
        }
        Edit::Bytes { at, bytes } => {
            let i = pos(*at, data.len());
            data.splice(i..i, bytes.iter().copied());
        }
        Edit::Delete { at, len } => {
            let i = pos(*at, data.len());
            let end = (i + len).min(data.len());
            data.drain(i..end);
        }
        Edit::Repeat { at, len, times } => {
            let i = pos(*at, data.len());
            let end = (i + len).min(data.len());
            let chunk = data[i..end].to_vec();
            for _ in 0..*times {
                data.splice(end..end, chunk.iter().copied());
            }
        }
        Edit::Splice {
            at,
            seed,
            from,
            len,
        } => {
            let other = &seeds[seed % seeds.len()];
            let start = pos(*from, other.len());
            let end = (start + len).min(other.len());
            let i = pos(*at, data.len());
            data.splice(i..i, other[start..end].iter().copied());
        }
        Edit::Truncate { at } => data.truncate(pos(*at, data.len())),
    }
    data.truncate(MAX_LEN);
}

/// A seed with up to eight edits.
pub fn mutated(seeds: Vec<Vec<u8>>, dict: Vec<Vec<u8>>) -> BoxedStrategy<Input> {
    assert!(!seeds.is_empty(), "mutated: no seeds");
    let indices: Vec<usize> = (0..seeds.len()).collect();
    (select(indices), prop::collection::vec(edit(), 0..8))
        .prop_map(move |(index, edits)| {
            let mut data = seeds[index].clone();
            for e in &edits {
                apply(&mut data, e, &seeds, &dict);
            }
            Input(data)
        })
        .boxed()
}

/// Up to `max_tokens` dictionary tokens and short random runs, concatenated.
pub fn text(dict: Vec<Vec<u8>>, max_tokens: usize) -> BoxedStrategy<Input> {
    let piece = if dict.is_empty() {
        prop::collection::vec(any::<u8>(), 1..4).boxed()
    } else {
        prop_oneof![
            4 => select(dict),
            1 => prop::collection::vec(any::<u8>(), 1..4),
        ]
        .boxed()
    };
    prop::collection::vec(piece, 0..max_tokens)
        .prop_map(|pieces| Input(pieces.concat()))
        .boxed()
}

/// The usual mix: mutated seeds, dictionary text, random bytes (5 : 3 : 1).
pub fn input<T: AsRef<[u8]>>(seeds: Vec<Vec<u8>>, dict: &[T]) -> BoxedStrategy<Input> {
    let dict: Vec<Vec<u8>> = dict.iter().map(|t| t.as_ref().to_vec()).collect();
    prop_oneof![
        5 => mutated(seeds, dict.clone()),
        3 => text(dict, 64),
        1 => prop::collection::vec(any::<u8>(), 0..1024).prop_map(Input),
    ]
    .boxed()
}
