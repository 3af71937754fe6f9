//! Applying a [`RootPlan`] to a standalone ext4 file with debugfs, without mounting.

use std::path::Path;

use crate::image::{ext4, ImageError};

use super::plan::{dirs_to_list, parse_listings, RootPlan};

/// Lists what exists, renders the script and runs it; any debugfs error fails.
pub fn apply(image: &Path, plan: &RootPlan, epoch: u64) -> Result<(), ImageError> {
    let query: String = dirs_to_list(plan)
        .iter()
        .map(|dir| format!("ls -p \"{dir}\"\n"))
        .collect();
    let (listing, errors) = ext4::debugfs_query(image, &query)?;
    // A directory that does not exist yet lists nothing and says so on stderr: expected.
    let unexpected: Vec<String> = errors
        .into_iter()
        .filter(|l| !l.contains("File not found by ext2_lookup"))
        .collect();
    if !unexpected.is_empty() {
        return Err(ImageError::Debugfs {
            path: image.to_path_buf(),
            message: unexpected.join(" | "),
        });
    }
    let existing = parse_listings(&listing);
    ext4::debugfs(image, &plan.script(epoch, &existing), epoch)
}
