//! The board models k8r supports and their firmware defaults.

/// A Raspberry Pi model as the firmware sees it.
///
/// Each variant is the plain B board: `Pi3` is a 3B (it matches only the `[pi3]` filter, not
/// `[pi3+]`), `Pi4` is a 4B (matches `[pi4]`, not `[pi400]`/`[cm4]`), `Pi5` is a 5B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Board {
    /// Raspberry Pi 3 Model B (BCM2837).
    Pi3,
    /// Raspberry Pi 4 Model B (BCM2711).
    Pi4,
    /// Raspberry Pi 5 Model B (BCM2712).
    Pi5,
}

impl Board {
    /// The model filter name (without brackets) this board matches in config.txt (DOC-COND).
    pub fn model_filter(self) -> &'static str {
        match self {
            Board::Pi3 => "pi3",
            Board::Pi4 => "pi4",
            Board::Pi5 => "pi5",
        }
    }

    /// The file whose presence makes a FAT partition bootable on this board: `start.elf`
    /// (Pi 3), `start4.elf` (Pi 4), `config.txt` (Pi 5, whose GPU firmware lives in the
    /// EEPROM) (DOC-AUTOBOOT `boot_partition`, DOC-EEPROM `PARTITION_WALK`).
    pub fn boot_marker(self) -> &'static str {
        match self {
            Board::Pi3 => "start.elf",
            Board::Pi4 => "start4.elf",
            Board::Pi5 => "config.txt",
        }
    }

    /// The device tree the firmware loads when `device_tree=` is not set (DOC-BOOT).
    pub fn default_dtb(self) -> &'static str {
        match self {
            Board::Pi3 => "bcm2710-rpi-3-b.dtb",
            Board::Pi4 => "bcm2711-rpi-4-b.dtb",
            Board::Pi5 => "bcm2712-rpi-5-b.dtb",
        }
    }

    /// The kernel file the firmware loads when `kernel=` is not set (DOC-BOOT).
    ///
    /// `arm_64bit` is the value of the `arm_64bit=` setting if present. Pi 3 defaults to
    /// 32-bit (`kernel7.img`) unless `arm_64bit=1`; Pi 4 defaults to 64-bit (`kernel8.img`);
    /// an explicit `arm_64bit=0` on Pi 4 selects `kernel7l.img` (the 32-bit LPAE kernel; this
    /// name is not in our notes: UNCERTAIN). Pi 5 always uses `kernel_2712.img` (whether it
    /// falls back to `kernel8.img` is UNCERTAIN in DOC-BOOT; we model no fallback, so a card
    /// relying on it fails in the model rather than on hardware).
    pub fn default_kernel(self, arm_64bit: Option<bool>) -> &'static str {
        match (self, arm_64bit) {
            (Board::Pi3, Some(true)) => "kernel8.img",
            (Board::Pi3, _) => "kernel7.img",
            (Board::Pi4, Some(false)) => "kernel7l.img",
            (Board::Pi4, _) => "kernel8.img",
            (Board::Pi5, _) => "kernel_2712.img",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_per_board() {
        let cases = [
            (
                Board::Pi3,
                None,
                "kernel7.img",
                "start.elf",
                "bcm2710-rpi-3-b.dtb",
            ),
            (
                Board::Pi3,
                Some(true),
                "kernel8.img",
                "start.elf",
                "bcm2710-rpi-3-b.dtb",
            ),
            (
                Board::Pi4,
                None,
                "kernel8.img",
                "start4.elf",
                "bcm2711-rpi-4-b.dtb",
            ),
            (
                Board::Pi4,
                Some(true),
                "kernel8.img",
                "start4.elf",
                "bcm2711-rpi-4-b.dtb",
            ),
            (
                Board::Pi5,
                None,
                "kernel_2712.img",
                "config.txt",
                "bcm2712-rpi-5-b.dtb",
            ),
        ];
        for (board, arm64, kernel, marker, dtb) in cases {
            assert_eq!(board.default_kernel(arm64), kernel, "{board:?}");
            assert_eq!(board.boot_marker(), marker, "{board:?}");
            assert_eq!(board.default_dtb(), dtb, "{board:?}");
        }
    }
}
