//! Volume labels read from a partition's first bytes: how the recovery installer finds its
//! partition and how `k8r-builder inspect` names them. Pure byte parsing.

/// The volume label of a FAT boot sector (FAT32 keeps it at 0x47, FAT12/16 at 0x2B), with
/// the padding spaces trimmed; `None` without the 0x55AA boot signature.
pub fn fat_label(boot_sector: &[u8]) -> Option<String> {
    if boot_sector.len() < 512 || boot_sector[510..512] != [0x55, 0xAA] {
        return None;
    }
    let at = if &boot_sector[0x52..0x5A] == b"FAT32   " {
        0x47
    } else {
        0x2B
    };
    Some(
        String::from_utf8_lossy(&boot_sector[at..at + 11])
            .trim_end()
            .to_owned(),
    )
}

/// The ext2/3/4 volume label: superblock at byte 1024, magic 0xEF53 at +0x38, name at +0x78.
/// Needs the first 2048 bytes of the partition.
pub fn ext4_label(head: &[u8]) -> Option<String> {
    let sb = head.get(1024..2048)?;
    if sb[0x38..0x3A] != [0x53, 0xEF] {
        return None;
    }
    let name = &sb[0x78..0x88];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Some(String::from_utf8_lossy(&name[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fat32_and_fat16_labels() {
        let mut s = [0u8; 512];
        s[510] = 0x55;
        s[511] = 0xAA;
        s[0x52..0x5A].copy_from_slice(b"FAT32   ");
        s[0x47..0x52].copy_from_slice(b"K8R-RECOVER");
        assert_eq!(fat_label(&s).as_deref(), Some("K8R-RECOVER"));
        let mut t = [0u8; 512];
        t[510] = 0x55;
        t[511] = 0xAA;
        t[0x2B..0x36].copy_from_slice(b"SYSTEM     ");
        assert_eq!(fat_label(&t).as_deref(), Some("SYSTEM"));
        assert_eq!(fat_label(&[0u8; 512]), None, "no boot signature");
    }

    #[test]
    fn reads_ext4_label() {
        let mut area = vec![0u8; 2048];
        area[1024 + 0x38] = 0x53;
        area[1024 + 0x39] = 0xEF;
        area[1024 + 0x78..1024 + 0x78 + 8].copy_from_slice(b"writable");
        assert_eq!(ext4_label(&area).as_deref(), Some("writable"));
        assert_eq!(ext4_label(&[0u8; 2048]), None);
        assert_eq!(ext4_label(&[0u8; 100]), None, "too short");
    }
}
