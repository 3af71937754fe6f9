//! The card: the four partitions behind an MBR.

use std::path::Path;

use k8r_card::layout::{BOOT_LABEL, DATA_LABEL};
use k8r_card::{Fs, Part};

use super::{dir_size, disk_id, AssembleError, DATA_SIZE};
use crate::base::BaseImage;
use crate::image::{card, ext4, fat, io_err, round_up, MIB};

/// Writes the card image `out` from the partition contents.
pub(super) fn card_image(
    base: &BaseImage,
    boot_dir: &Path,
    root: &Path,
    recovery_img: &Path,
    out: &Path,
    build_id: &str,
    epoch: u64,
) -> Result<(), AssembleError> {
    let work = out.with_extension("parts");
    std::fs::create_dir_all(&work).map_err(io_err(&work))?;
    let boot_img = work.join("boot.img");
    let boot_size = base.boot.1.byte_len().max(dir_size(boot_dir)? + 32 * MIB);
    let fat = fat::format(
        &boot_img,
        &fat::FatSpec {
            size: round_up(boot_size, MIB),
            label: BOOT_LABEL.into(),
            volume_id: 0x6b38_7202,
        },
    )?;
    fat.copy_tree(boot_dir, epoch)?;
    let data_img = work.join("data.img");
    let empty = work.join("empty");
    std::fs::create_dir_all(&empty).map_err(io_err(&empty))?;
    ext4::make_from_dir(
        &data_img,
        &ext4::Ext4Spec {
            size: DATA_SIZE,
            label: DATA_LABEL.into(),
            uuid: "6b38722d-6461-4000-8000-000000000004".into(),
            hash_seed: "6b38722d-6461-4000-8000-000000000005".into(),
            epoch,
        },
        &empty,
    )?;
    let disk_id = disk_id(build_id);
    let part = |type_id, content| card::PartitionSource {
        type_id,
        content,
        size: None,
    };
    card::assemble(
        out,
        disk_id,
        &[
            part(Part::Recovery.fs().mbr_type(), recovery_img),
            part(Part::Boot.fs().mbr_type(), &boot_img),
            part(Part::Root.fs().mbr_type(), root),
            part(Fs::Ext4.mbr_type(), &data_img),
        ],
        None,
    )?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
