//! Which partition the bootloader boots (pi-boot notes section 3; DOC-AUTOBOOT, DOC-EEPROM).

use super::{BootRequest, CardView, Eeprom, NoBoot, PartitionKind, HALT_PARTITION, WALK_MAX};
use crate::autoboot::Autoboot;
use crate::board::Board;

/// Reboot numbers above this may be overridden by EEPROM `PARTITION` (RN-2711 2025-02-11).
const HIGH_REBOOT_PARTITION: u8 = 31;

/// The partition picked and whether autoboot.txt asked for `tryboot_a_b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Picked {
    pub partition: u8,
    pub tryboot_a_b: bool,
}

/// A FAT partition holding the board's marker file (DOC-AUTOBOOT `boot_partition`,
/// DOC-EEPROM `PARTITION_WALK`).
fn bootable(card: &CardView, number: u8, board: Board) -> bool {
    card.partition(number)
        .is_some_and(|p| p.kind == PartitionKind::Fat && p.files.exists(board.boot_marker()))
}

fn lowest<'a>(numbers: impl Iterator<Item = &'a u8>) -> Option<u8> {
    numbers.copied().min()
}

/// The partition autoboot.txt is read from: the first FAT partition.
///
/// pi-boot notes section 3 call it "the default (first FAT) partition, in practice
/// partition 1" (ISSUE raspberrypi/rpi-eeprom#654, #818 log). We do not require the
/// firmware marker file there, because documented layouts keep only autoboot.txt on p1 (RAUC-RT,
/// ISSUE raspberrypi/rpi-eeprom#499).
fn first_fat(card: &CardView) -> Option<u8> {
    lowest(
        card.partitions
            .iter()
            .filter(|p| p.kind == PartitionKind::Fat)
            .map(|p| &p.number),
    )
}

/// Partition 0, "the default": the first bootable FAT partition (DOC-AUTOBOOT).
fn default_partition(card: &CardView, board: Board) -> Option<u8> {
    lowest(
        card.partitions
            .iter()
            .filter(|p| bootable(card, p.number, board))
            .map(|p| &p.number),
    )
}

/// Walk order after `from` (DOC-EEPROM `PARTITION_WALK`: "each partition in turn up to 8,
/// wrapping"): `from+1 ..= 8`, then `1 .. from`.
fn walk_order(from: u8) -> Vec<u8> {
    if (1..WALK_MAX).contains(&from) {
        (from + 1..=WALK_MAX).chain(1..from).collect()
    } else {
        (1..=WALK_MAX).filter(|&n| n != from).collect()
    }
}

/// Read autoboot.txt from the first FAT partition. A missing, oversized or unreadable file
/// is ignored (default partition); torn lines inside it are ignored one by one.
fn read_autoboot(card: &CardView, tryboot: bool, trace: &mut Vec<String>) -> (u8, bool) {
    let Some(p0) = first_fat(card) else {
        trace.push("no FAT partition: no autoboot.txt".to_string());
        return (0, false);
    };
    let Some(view) = card.partition(p0) else {
        return (0, false);
    };
    let Some(bytes) = view.files.read("autoboot.txt") else {
        trace.push(format!("partition {p0}: no autoboot.txt"));
        return (0, false);
    };
    match Autoboot::parse(&bytes) {
        Ok(ab) => {
            for warning in ab.warnings() {
                trace.push(format!("partition {p0}: {warning}"));
            }
            let number = ab.boot_partition(tryboot);
            let a_b = ab.tryboot_a_b(tryboot);
            trace.push(format!(
                "partition {p0}: autoboot.txt boot_partition={} tryboot_a_b={}",
                number.map_or_else(|| "unset".to_string(), |n| n.to_string()),
                u8::from(a_b)
            ));
            (number.unwrap_or(0), a_b)
        }
        Err(err) => {
            trace.push(format!("partition {p0}: {err}; ignored"));
            (0, false)
        }
    }
}

/// Decide the partition.
///
/// - Reboot number 63 halts (checked first: a power-off must stay a power-off even if the
///   EEPROM remaps high numbers; UNCERTAIN, our safe reading).
/// - Reboot number 1..=31 wins outright (DOC-AUTOBOOT). Whether autoboot.txt is consulted at
///   all in that case is UNCERTAIN; we do not read it, so `tryboot_a_b` is off then.
/// - Reboot number > 31: EEPROM `PARTITION` replaces it if set (RN-2711 2025-02-11).
/// - Reboot number 0: autoboot.txt from the first FAT partition; if it names no partition
///   (or 0), EEPROM `PARTITION` if set (RN-2711 2022-02-04: autoboot.txt has higher
///   precedence). RN-2711 2025-08-27 says `PARTITION` may also override a reboot number of 0;
///   we read that as "applies when nothing else chose", keeping autoboot.txt above it
///   (UNCERTAIN).
/// - Still 0: the default partition (first bootable FAT).
/// - A chosen partition that is missing or not bootable: with `PARTITION_WALK`, the walk
///   (autoboot.txt not processed, DOC-EEPROM); without it, the default partition
///   (RN-2711 2022-10-18 "failover to partition 1"; the 2025-02-11 note instead says older
///   bootloaders moved to the next boot mode — UNCERTAIN, we follow the 2022-10 note because
///   it is about exactly this case).
pub(super) fn choose(
    card: &CardView,
    req: BootRequest,
    board: Board,
    eeprom: &Eeprom,
    trace: &mut Vec<String>,
) -> Result<Picked, NoBoot> {
    let marker = board.boot_marker();
    trace.push(format!(
        "reboot request: partition {}, tryboot {}",
        req.partition,
        u8::from(req.tryboot)
    ));
    if req.partition == HALT_PARTITION {
        trace.push("partition 63: halt".to_string());
        return Err(NoBoot::Halt);
    }
    let mut requested = req.partition;
    let mut tryboot_a_b = false;
    if requested > HIGH_REBOOT_PARTITION {
        if let Some(p) = eeprom.partition {
            trace.push(format!(
                "EEPROM PARTITION={p} overrides reboot number {requested}"
            ));
            requested = p;
        }
    }
    if requested == 0 {
        (requested, tryboot_a_b) = read_autoboot(card, req.tryboot, trace);
        if requested == 0 {
            if let Some(p) = eeprom.partition {
                trace.push(format!("EEPROM PARTITION={p} used"));
                requested = p;
            }
        }
    }
    let default = default_partition(card, board);
    if requested == 0 {
        let Some(p) = default else {
            trace.push(format!("no FAT partition holds {marker}"));
            return Err(NoBoot::NoBootablePartition { marker });
        };
        trace.push(format!("default partition {p} (first FAT with {marker})"));
        return Ok(Picked {
            partition: p,
            tryboot_a_b,
        });
    }
    if bootable(card, requested, board) {
        trace.push(format!("partition {requested} is bootable"));
        return Ok(Picked {
            partition: requested,
            tryboot_a_b,
        });
    }
    trace.push(format!(
        "partition {requested} is not bootable (missing, not FAT, or no {marker})"
    ));
    let (found, fallback) = if eeprom.partition_walk {
        let found = walk_order(requested)
            .into_iter()
            .find(|&n| bootable(card, n, board));
        (found, "the partition walk")
    } else {
        (default, "the default-partition fallback")
    };
    match found {
        Some(p) => {
            trace.push(format!("{fallback} chose partition {p}"));
            Ok(Picked {
                partition: p,
                tryboot_a_b,
            })
        }
        None => Err(NoBoot::NotBootable {
            requested,
            marker,
            fallback,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::walk_order;

    #[test]
    fn walk_wraps() {
        assert_eq!(walk_order(3), [4, 5, 6, 7, 8, 1, 2]);
        assert_eq!(walk_order(1), [2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(walk_order(8), [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(walk_order(62), [1, 2, 3, 4, 5, 6, 7, 8]);
    }
}
