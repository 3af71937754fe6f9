//! Keeping an output directory's `SHA256SUMS` true after `inject` changed the card in it.
//! Pure text edits; the caller reads, hashes and writes.

/// The digest `sums` lists for `name` (`DIGEST  name`, `DIGEST *name` or `./name`), if any.
pub fn listed(sums: &str, name: &str) -> Option<String> {
    sums.lines()
        .filter_map(entry)
        .find(|(_, n)| *n == name)
        .map(|(d, _)| d.to_owned())
}

/// `sums` with the line of `name` given `digest` (its form kept); `None` when `name` is not
/// listed.
pub fn with_digest(sums: &str, name: &str, digest: &str) -> Option<String> {
    let mut found = false;
    let mut out = String::with_capacity(sums.len());
    for line in sums.split_inclusive('\n') {
        match entry(line.trim_end_matches(['\n', '\r'])) {
            Some((old, n)) if n == name => {
                found = true;
                out.push_str(digest);
                out.push_str(&line[old.len()..]);
            }
            _ => out.push_str(line),
        }
    }
    found.then_some(out)
}

/// `(digest, file name)` of a `sha256sum` line.
fn entry(line: &str) -> Option<(&str, &str)> {
    let (digest, rest) = line.split_once(' ')?;
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let name = rest.strip_prefix([' ', '*'])?;
    Some((digest, name.strip_prefix("./").unwrap_or(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

    #[test]
    fn only_the_named_line_changes() {
        let sums = format!("{A}  bootable_image.img\n{B}  image.img.xz\n");
        assert_eq!(listed(&sums, "bootable_image.img").as_deref(), Some(A));
        let new = with_digest(&sums, "bootable_image.img", C).expect("listed");
        assert_eq!(new, format!("{C}  bootable_image.img\n{B}  image.img.xz\n"));
        assert_eq!(with_digest(&sums, "other.img", C), None);
        assert_eq!(listed(&sums, "other.img"), None);
    }

    #[test]
    fn binary_mode_and_dot_slash_are_understood() {
        let sums = format!("{A} *./bootable_image.img\r\n");
        assert_eq!(
            with_digest(&sums, "bootable_image.img", C).as_deref(),
            Some(format!("{C} *./bootable_image.img\r\n").as_str())
        );
        assert_eq!(listed("garbage line\n", "garbage"), None);
    }
}
