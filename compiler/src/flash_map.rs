//! A flash map: where every partition lives and which parts a build writes, drawn to scale as
//! SVG.
//!
//! One model, two sources: [`FlashMap::of_image`] reads the segments the compiler hands the
//! flasher (the daemon's bench page shows one per manifest in force), [`FlashMap::of_bytes`]
//! reads a merged factory image or a bare partition table (`espfleet inspect IMAGE --svg`).
//! [`FlashMap::to_svg`] is pure and deterministic: the same map gives the same bytes.
//!
//! Only names, offsets and sizes leave this module: a map never carries image bytes, so
//! nothing drawn can hold key material. Every string drawn is XML-escaped (partition names
//! come from binary tables, which may be hostile).

use std::fmt::Write as _;

use serde::Serialize;

use crate::esp_at::firmware;
use crate::inspect::{self, Kind};
use crate::partition_table::{self, PartitionTable};
use crate::target::Chip;

/// Why no flash map can be drawn for an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum FlashMapError {
    /// The input has no partition layout (an NVS image, a single firmware part, ...).
    #[error("a {kind} image has no partition layout to draw")]
    #[diagnostic(
        code(espfleet::flash_map::no_layout),
        help(
            "draw a merged factory image (factory/factory_<MODULE>.bin) or a partition table (partition_table/partition-table.bin)"
        )
    )]
    NoLayout {
        /// What the input was read as.
        kind: &'static str,
    },
    /// The input is not a recognisable image at all, or its tables do not decode.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Inspect(#[from] inspect::InspectError),
}

/// What a region of the layout is, which decides its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RegionKind {
    /// The second-stage bootloader's area (from the chip's bootloader offset to the table).
    Bootloader,
    /// A partition table (the primary one, or ESP-AT's at_customize table).
    PartitionTable,
    /// An app partition (`ota_0`, `factory`, ...).
    App,
    /// An NVS partition (`nvs`, `mfg_nvs`).
    Nvs,
    /// OTA data.
    OtaData,
    /// PHY init data.
    Phy,
    /// ESP-AT's at_customize partition (it holds a second table and the regions that table
    /// lists).
    AtCustomize,
    /// Any other data partition.
    Data,
    /// A custom type byte.
    Custom,
}

impl RegionKind {
    fn of_partition(ty: u8, subtype: u8, name: &str) -> Self {
        match (ty, subtype) {
            (0x00, _) => RegionKind::App,
            (0x01, 0x00) => RegionKind::OtaData,
            (0x01, 0x01) => RegionKind::Phy,
            (0x01, 0x02) => RegionKind::Nvs,
            (0x01, _) => RegionKind::Data,
            _ if name == "at_customize" => RegionKind::AtCustomize,
            _ => RegionKind::Custom,
        }
    }

    fn colour(self) -> &'static str {
        match self {
            RegionKind::Bootloader => "#9c6ade",
            RegionKind::PartitionTable => "#64748b",
            RegionKind::App => "#3b82f6",
            RegionKind::Nvs => "#14b8a6",
            RegionKind::OtaData => "#f59e0b",
            RegionKind::Phy => "#84cc16",
            RegionKind::AtCustomize => "#c084fc",
            RegionKind::Data => "#22c55e",
            RegionKind::Custom => "#94a3b8",
        }
    }
}

/// Which table a region comes from, i.e. which lane of the drawing it goes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Lane {
    /// The bootloader, the primary table and its partitions.
    Primary,
    /// ESP-AT's at_customize table and its partitions (they live inside `at_customize`).
    AtCustomize,
}

/// One region of the layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Region {
    /// Partition name (`bootloader` and `partition-table` for the fixed regions).
    pub name: String,
    /// What it is.
    pub kind: RegionKind,
    /// Which table lists it.
    pub lane: Lane,
    /// Flash offset in bytes.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

/// One part a build writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Part {
    /// Image name (`bootloader`, `app`, `mfg_nvs`, ...) or, for a merged image, the region
    /// holding data.
    pub name: String,
    /// Flash offset in bytes.
    pub offset: u64,
    /// Bytes written.
    pub size: u64,
}

/// Where everything goes on one chip's flash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlashMap {
    /// The chip, when known (`esp32`, `esp32c3`).
    pub chip: Option<&'static str>,
    /// Flash size in bytes.
    pub flash_size: u64,
    /// The layout, sorted by lane and offset.
    pub regions: Vec<Region>,
    /// The parts written, sorted by offset.
    pub parts: Vec<Part>,
}

/// The sector a partition table occupies.
const TABLE_SECTOR: u64 = 0x1000;

fn is_table(data: &[u8]) -> bool {
    data.starts_with(&[0xAA, 0x50])
}

impl FlashMap {
    /// The map of what the compiler hands the flasher: the layout from the image's own
    /// partition table segment(s), the parts from its segments. An image without a table
    /// segment gives a map with parts only.
    pub fn of_image(image: &crate::image::FlashImage) -> FlashMap {
        let table_at = |offset: u32| {
            image
                .segments
                .iter()
                .find(|s| s.offset == offset && is_table(&s.data))
                .and_then(|s| PartitionTable::from_bytes(&s.data).ok())
        };
        let primary = image
            .segments
            .iter()
            .find(|s| s.name == "partition-table" && is_table(&s.data))
            .or_else(|| image.segments.iter().find(|s| is_table(&s.data)));
        let mut map = FlashMap {
            chip: Some(image.chip.name()),
            flash_size: u64::from(image.flash.size.bytes()),
            regions: Vec::new(),
            parts: image
                .segments
                .iter()
                .map(|s| Part {
                    name: s.name.clone(),
                    offset: u64::from(s.offset),
                    size: s.data.len() as u64,
                })
                .collect(),
        };
        if let Some((seg, table)) =
            primary.and_then(|s| Some((s, PartitionTable::from_bytes(&s.data).ok()?)))
        {
            map.add_layout(Some(image.chip), seg.offset, &table, table_at);
        }
        map.finish();
        map
    }

    /// The map of a merged factory image or a bare partition table (recognised from the
    /// content, as `espfleet inspect` does).
    pub fn of_bytes(bytes: &[u8]) -> Result<FlashMap, FlashMapError> {
        let kind = inspect::detect(bytes).ok_or_else(|| {
            // Let inspect word the "unrecognised" error the same way everywhere.
            inspect::inspect(bytes, None)
                .err()
                .unwrap_or(inspect::InspectError::Unrecognised {
                    detail: "unknown content".into(),
                })
        })?;
        let malformed = |message: String| inspect::InspectError::Malformed {
            kind: kind.name(),
            message,
        };
        match kind {
            Kind::Merged => {
                let layout = inspect::merged_layout(bytes).map_err(malformed)?;
                let boot = bytes
                    .get(layout.bootloader as usize..layout.bootloader as usize + 4)
                    .unwrap_or(&[]);
                let header_size = match boot {
                    [firmware::MAGIC, _, mode, size_freq] => {
                        inspect::header_flash(layout.chip, *mode, *size_freq).2
                    }
                    _ => None,
                };
                let flash_size = header_size.map_or(bytes.len() as u64, |s| u64::from(s.bytes()));
                let sub = layout.at_customize.clone();
                let mut map = FlashMap {
                    chip: Some(layout.chip.name()),
                    flash_size,
                    regions: Vec::new(),
                    parts: Vec::new(),
                };
                map.add_layout(
                    Some(layout.chip),
                    layout.table_offset,
                    &layout.primary,
                    |o| {
                        sub.as_ref()
                            .filter(|(at, _)| *at == o)
                            .map(|(_, t)| t.clone())
                    },
                );
                // Parts: every region of the layout that holds anything but erased flash,
                // as long as its data reaches (rounded up to 4 KiB, the erase unit).
                let leaves: Vec<Region> = map
                    .regions
                    .iter()
                    .filter(|r| r.kind != RegionKind::AtCustomize)
                    .cloned()
                    .collect();
                for r in leaves {
                    let data = inspect::region(
                        bytes,
                        u32::try_from(r.offset).unwrap_or(u32::MAX),
                        u32::try_from(r.size).unwrap_or(u32::MAX),
                    );
                    if let Some(last) = data.iter().rposition(|b| *b != 0xFF) {
                        let used = (last as u64 + 1).div_ceil(0x1000) * 0x1000;
                        map.parts.push(Part {
                            name: r.name.clone(),
                            offset: r.offset,
                            size: used.min(r.size),
                        });
                    }
                }
                map.finish();
                Ok(map)
            }
            Kind::PartitionTable => {
                let table =
                    PartitionTable::from_bytes(bytes).map_err(|e| malformed(e.to_string()))?;
                let end = table
                    .partitions()
                    .iter()
                    .map(|p| u64::from(p.offset) + u64::from(p.size))
                    .max()
                    .unwrap_or(0);
                // The smallest flash size ESP chips come with that holds every partition.
                let flash_size = [1u64 << 20, 2 << 20, 4 << 20, 8 << 20, 16 << 20]
                    .into_iter()
                    .find(|s| *s >= end)
                    .unwrap_or(end);
                let mut map = FlashMap {
                    chip: None,
                    flash_size,
                    regions: Vec::new(),
                    parts: Vec::new(),
                };
                map.add_layout(None, partition_table::DEFAULT_TABLE_OFFSET, &table, |_| {
                    None
                });
                map.finish();
                Ok(map)
            }
            other => Err(FlashMapError::NoLayout { kind: other.name() }),
        }
    }

    /// Adds the bootloader area, the primary table and its partitions, and the at_customize
    /// table (which `sub_table` finds by offset) with its partitions.
    fn add_layout(
        &mut self,
        chip: Option<Chip>,
        table_offset: u32,
        table: &PartitionTable,
        sub_table: impl Fn(u32) -> Option<PartitionTable>,
    ) {
        let table_offset = u64::from(table_offset);
        if let Some(chip) = chip {
            let boot = u64::from(chip.bootloader_offset());
            if boot < table_offset {
                self.regions.push(Region {
                    name: "bootloader".into(),
                    kind: RegionKind::Bootloader,
                    lane: Lane::Primary,
                    offset: boot,
                    size: table_offset - boot,
                });
            }
        }
        self.regions.push(Region {
            name: "partition-table".into(),
            kind: RegionKind::PartitionTable,
            lane: Lane::Primary,
            offset: table_offset,
            size: TABLE_SECTOR,
        });
        for p in table.partitions() {
            let kind = RegionKind::of_partition(p.ty, p.subtype, &p.name);
            self.regions.push(Region {
                name: p.name.clone(),
                kind,
                lane: Lane::Primary,
                offset: u64::from(p.offset),
                size: u64::from(p.size),
            });
            if let Some(sub) = (kind == RegionKind::AtCustomize)
                .then(|| sub_table(p.offset))
                .flatten()
            {
                self.regions.push(Region {
                    name: "at_customize table".into(),
                    kind: RegionKind::PartitionTable,
                    lane: Lane::AtCustomize,
                    offset: u64::from(p.offset),
                    size: TABLE_SECTOR.min(u64::from(p.size)),
                });
                for q in sub.partitions() {
                    self.regions.push(Region {
                        name: q.name.clone(),
                        kind: RegionKind::of_partition(q.ty, q.subtype, &q.name),
                        lane: Lane::AtCustomize,
                        offset: u64::from(q.offset),
                        size: u64::from(q.size),
                    });
                }
            }
        }
    }

    fn finish(&mut self) {
        self.regions.sort_by(|a, b| {
            (a.lane == Lane::AtCustomize, a.offset, &a.name).cmp(&(
                b.lane == Lane::AtCustomize,
                b.offset,
                &b.name,
            ))
        });
        self.parts
            .sort_by(|a, b| (a.offset, &a.name).cmp(&(b.offset, &b.name)));
    }

    /// The byte range the drawing spans: the flash, or more when a (broken) layout reaches
    /// past its end.
    pub fn extent(&self) -> u64 {
        self.regions
            .iter()
            .map(|r| r.offset.saturating_add(r.size))
            .chain(self.parts.iter().map(|p| p.offset.saturating_add(p.size)))
            .chain(std::iter::once(self.flash_size))
            .max()
            .unwrap_or(0)
            .max(1)
    }

    /// Draws the map to scale: one horizontal band per lane (the primary layout, the
    /// at_customize table, the parts written) over a common byte axis, then a legend listing
    /// every region and part with its offset and size, since most regions are far too narrow
    /// at true scale to carry a label. A region narrower than one pixel is drawn one pixel
    /// wide.
    pub fn to_svg(&self, title: &str) -> String {
        Svg::new(self).render(title)
    }
}

/// Layout constants of the drawing, in SVG user units (pixels at 100 %).
const WIDTH: f64 = 960.0;
const LEFT: f64 = 104.0;
const RIGHT: f64 = 16.0;
const LANE_H: f64 = 30.0;
const PART_H: f64 = 18.0;
const ROW_H: f64 = 16.0;

struct Svg<'a> {
    map: &'a FlashMap,
    scale: f64,
    out: String,
}

/// Escapes text for SVG (XML) content and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0; show them as a replacement.
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// `4M`, `1536K`, `3792 B`: the partition-table convention for sizes.
pub fn size_label(n: u64) -> String {
    if n > 0 && n % (1024 * 1024) == 0 {
        format!("{}M", n / (1024 * 1024))
    } else if n > 0 && n % 1024 == 0 {
        format!("{}K", n / 1024)
    } else {
        format!("{n} B")
    }
}

#[allow(clippy::cast_precision_loss)] // offsets below 2^53 are exact in f64; drawing only
fn px(n: u64) -> f64 {
    n as f64
}

impl<'a> Svg<'a> {
    fn new(map: &'a FlashMap) -> Self {
        Svg {
            map,
            scale: (WIDTH - LEFT - RIGHT) / px(map.extent()),
            out: String::new(),
        }
    }

    fn x(&self, offset: u64) -> f64 {
        LEFT + px(offset) * self.scale
    }

    fn w(&self, size: u64) -> f64 {
        (px(size) * self.scale).max(1.0)
    }

    #[allow(clippy::too_many_lines)] // one drawing, top to bottom
    fn render(mut self, title: &str) -> String {
        let map = self.map;
        let has_sub = map.regions.iter().any(|r| r.lane == Lane::AtCustomize);
        let mut y = 34.0;
        let primary_y = y;
        y += LANE_H + 8.0;
        let sub_y = has_sub.then_some(y);
        if has_sub {
            y += LANE_H + 8.0;
        }
        let parts_y = y;
        y += PART_H + 6.0;
        let axis_y = y;
        let legend_y = axis_y + 34.0;
        let primary: Vec<&Region> = map
            .regions
            .iter()
            .filter(|r| r.lane == Lane::Primary)
            .collect();
        let sub: Vec<&Region> = map
            .regions
            .iter()
            .filter(|r| r.lane == Lane::AtCustomize)
            .collect();
        let left_rows = map.regions.len();
        let right_rows = map.parts.len();
        let height = legend_y + ROW_H * px(left_rows.max(right_rows) as u64 + 1) + 8.0;

        let heading = format!(
            "{title} — {}{} flash",
            map.chip.map(|c| format!("{c}, ")).unwrap_or_default(),
            size_label(map.flash_size)
        );
        let _ = writeln!(
            self.out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
             viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"{}\" \
             font-family=\"DejaVu Sans, Verdana, sans-serif\" font-size=\"11\">",
            xml_escape(&heading)
        );
        let _ = writeln!(
            self.out,
            "<rect width=\"{WIDTH}\" height=\"{height}\" fill=\"#ffffff\"/>\n\
             <text x=\"8\" y=\"20\" font-size=\"14\" font-weight=\"bold\" fill=\"#0f172a\">{}</text>",
            xml_escape(&heading)
        );

        // The whole flash as the background of each lane.
        let lanes: Vec<(&str, f64, f64)> = std::iter::once(("partitions", primary_y, LANE_H))
            .chain(sub_y.map(|y| ("at_customize", y, LANE_H)))
            .chain(std::iter::once(("written", parts_y, PART_H)))
            .collect();
        for (label, ly, h) in &lanes {
            let _ = writeln!(
                self.out,
                "<text x=\"8\" y=\"{:.1}\" fill=\"#334155\">{label}</text>\n\
                 <rect x=\"{LEFT}\" y=\"{ly:.1}\" width=\"{:.2}\" height=\"{h}\" fill=\"#f1f5f9\" stroke=\"#cbd5e1\"/>",
                ly + h / 2.0 + 4.0,
                self.w(map.extent()),
            );
        }
        for r in &primary {
            self.region(r, primary_y, LANE_H);
        }
        if let Some(sy) = sub_y {
            for r in &sub {
                self.region(r, sy, LANE_H);
            }
        }
        for p in &map.parts {
            let (x, w) = (self.x(p.offset), self.w(p.size));
            let _ = writeln!(
                self.out,
                "<rect x=\"{x:.2}\" y=\"{parts_y:.1}\" width=\"{w:.2}\" height=\"{PART_H}\" fill=\"#0f172a\" fill-opacity=\"0.8\"><title>{}</title></rect>",
                xml_escape(&format!(
                    "{} written at {:#x}, {}",
                    p.name,
                    p.offset,
                    size_label(p.size)
                ))
            );
        }

        // Byte axis: a tick per 256 KiB up to 4 MiB of extent, per 1 MiB beyond; labels on
        // whole MiB.
        let extent = map.extent();
        let step: u64 = if extent <= 4 << 20 {
            256 << 10
        } else {
            1 << 20
        };
        let mut at = 0;
        while at <= extent {
            let x = self.x(at);
            let major = at % (1 << 20) == 0;
            let _ = writeln!(
                self.out,
                "<line x1=\"{x:.2}\" y1=\"{axis_y:.1}\" x2=\"{x:.2}\" y2=\"{:.1}\" stroke=\"#475569\"/>",
                axis_y + if major { 8.0 } else { 4.0 }
            );
            if major {
                let _ = writeln!(
                    self.out,
                    "<text x=\"{x:.2}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#334155\">{}</text>",
                    axis_y + 20.0,
                    if at == 0 {
                        "0".to_owned()
                    } else {
                        size_label(at)
                    }
                );
            }
            at += step;
        }
        if extent > map.flash_size {
            let x = self.x(map.flash_size);
            let _ = writeln!(
                self.out,
                "<line x1=\"{x:.2}\" y1=\"{primary_y:.1}\" x2=\"{x:.2}\" y2=\"{axis_y:.1}\" stroke=\"#dc2626\" stroke-dasharray=\"4 3\"/>\n\
                 <text x=\"{x:.2}\" y=\"{:.1}\" fill=\"#dc2626\">flash ends here</text>",
                primary_y - 4.0
            );
        }

        // Legend: regions on the left, parts written on the right.
        let _ = writeln!(
            self.out,
            "<text x=\"8\" y=\"{legend_y:.1}\" font-weight=\"bold\" fill=\"#0f172a\">region</text>\
             <text x=\"196\" y=\"{legend_y:.1}\" font-weight=\"bold\" fill=\"#0f172a\">offset</text>\
             <text x=\"280\" y=\"{legend_y:.1}\" font-weight=\"bold\" fill=\"#0f172a\">size</text>\
             <text x=\"520\" y=\"{legend_y:.1}\" font-weight=\"bold\" fill=\"#0f172a\">written</text>\
             <text x=\"700\" y=\"{legend_y:.1}\" font-weight=\"bold\" fill=\"#0f172a\">offset</text>\
             <text x=\"784\" y=\"{legend_y:.1}\" font-weight=\"bold\" fill=\"#0f172a\">size</text>"
        );
        for (i, r) in map.regions.iter().enumerate() {
            let ry = legend_y + ROW_H * px(i as u64 + 1);
            let indent = if r.lane == Lane::AtCustomize {
                12.0
            } else {
                0.0
            };
            let _ = writeln!(
                self.out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
                 <text x=\"{:.1}\" y=\"{ry:.1}\" fill=\"#0f172a\">{}</text>\
                 <text x=\"196\" y=\"{ry:.1}\" fill=\"#334155\">{:#09x}</text>\
                 <text x=\"280\" y=\"{ry:.1}\" fill=\"#334155\">{}</text>",
                8.0 + indent,
                ry - 9.0,
                r.kind.colour(),
                24.0 + indent,
                xml_escape(&r.name),
                r.offset,
                size_label(r.size)
            );
        }
        for (i, p) in map.parts.iter().enumerate() {
            let ry = legend_y + ROW_H * px(i as u64 + 1);
            let _ = writeln!(
                self.out,
                "<rect x=\"504\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"#0f172a\" fill-opacity=\"0.8\"/>\
                 <text x=\"520\" y=\"{ry:.1}\" fill=\"#0f172a\">{}</text>\
                 <text x=\"700\" y=\"{ry:.1}\" fill=\"#334155\">{:#09x}</text>\
                 <text x=\"784\" y=\"{ry:.1}\" fill=\"#334155\">{}</text>",
                ry - 9.0,
                xml_escape(&p.name),
                p.offset,
                size_label(p.size)
            );
        }
        self.out.push_str("</svg>\n");
        self.out
    }

    fn region(&mut self, region: &Region, top: f64, height: f64) {
        let (left, width) = (self.x(region.offset), self.w(region.size));
        let _ = writeln!(
            self.out,
            "<rect x=\"{left:.2}\" y=\"{top:.1}\" width=\"{width:.2}\" height=\"{height}\" fill=\"{}\" stroke=\"#ffffff\" stroke-width=\"0.5\"><title>{}</title></rect>",
            region.kind.colour(),
            xml_escape(&format!(
                "{} at {:#x}, {}",
                region.name,
                region.offset,
                size_label(region.size)
            ))
        );
        // A label only where it fits (about 6.2 units per character at font-size 11).
        #[allow(clippy::cast_precision_loss)] // label lengths are tiny
        let need = region.name.chars().count() as f64 * 6.2 + 6.0;
        if width >= need {
            let _ = writeln!(
                self.out,
                "<text x=\"{:.2}\" y=\"{:.1}\" fill=\"#ffffff\">{}</text>",
                left + 3.0,
                top + height / 2.0 + 4.0,
                xml_escape(&region.name)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{FlashImage, Segment};
    use crate::partition_table::{Flags, Partition};
    use crate::target::{FlashFreq, FlashMode, FlashSettings, FlashSize};

    fn part(name: &str, ty: u8, subtype: u8, offset: u32, size: u32) -> Partition {
        Partition {
            name: name.into(),
            ty,
            subtype,
            offset,
            size,
            flags: Flags::default(),
        }
    }

    fn image_with(table: &PartitionTable) -> FlashImage {
        FlashImage {
            chip: Chip::Esp32,
            flash: FlashSettings {
                mode: FlashMode::Dio,
                freq: FlashFreq::F40m,
                size: FlashSize::from_bytes(4 << 20).unwrap(),
            },
            segments: vec![
                Segment {
                    name: "bootloader".into(),
                    offset: 0x1000,
                    data: vec![0xE9; 0x2000].into(),
                },
                Segment {
                    name: "partition-table".into(),
                    offset: 0x8000,
                    data: table.to_bytes(false).unwrap().into(),
                },
                Segment {
                    name: "app".into(),
                    offset: 0x10_0000,
                    data: vec![0; 0x4_0000].into(),
                },
            ],
        }
    }

    #[test]
    fn regions_and_parts_come_from_the_table_segment_and_the_segments() {
        let table = PartitionTable::new(vec![
            part("nvs", 1, 2, 0x9000, 0x6000),
            part("phy_init", 1, 1, 0xf000, 0x1000),
            part("factory", 0, 0, 0x10_0000, 0x18_0000),
        ]);
        let map = FlashMap::of_image(&image_with(&table));
        assert_eq!(map.chip, Some("esp32"));
        assert_eq!(map.flash_size, 4 << 20);
        let regions: Vec<_> = map
            .regions
            .iter()
            .map(|r| (r.name.as_str(), r.kind, r.offset, r.size))
            .collect();
        // The ESP32 bootloader lives at 0x1000 (ESP-IDF's bootloader offset) up to the table.
        assert_eq!(
            regions,
            [
                ("bootloader", RegionKind::Bootloader, 0x1000, 0x7000),
                (
                    "partition-table",
                    RegionKind::PartitionTable,
                    0x8000,
                    0x1000
                ),
                ("nvs", RegionKind::Nvs, 0x9000, 0x6000),
                ("phy_init", RegionKind::Phy, 0xf000, 0x1000),
                ("factory", RegionKind::App, 0x10_0000, 0x18_0000),
            ]
        );
        let parts: Vec<_> = map
            .parts
            .iter()
            .map(|p| (p.name.as_str(), p.offset, p.size))
            .collect();
        assert_eq!(
            parts,
            [
                ("bootloader", 0x1000, 0x2000),
                ("partition-table", 0x8000, 0xC00),
                ("app", 0x10_0000, 0x4_0000)
            ]
        );
    }

    /// The drawing is to scale. Worked by hand: the bar spans WIDTH - LEFT - RIGHT = 840 units
    /// for 4 MiB, so 1 MiB is 210 units; `factory` at 1 MiB, 1.5 MiB long starts at
    /// 104 + 210 = 314 and is 315 wide; the app part (256 KiB) is 52.5 wide.
    #[test]
    fn rectangles_are_drawn_to_scale() {
        let table = PartitionTable::new(vec![part("factory", 0, 0, 0x10_0000, 0x18_0000)]);
        let svg = FlashMap::of_image(&image_with(&table)).to_svg("t");
        assert!(
            svg.contains(
                "<rect x=\"314.00\" y=\"34.0\" width=\"315.00\" height=\"30\" fill=\"#3b82f6\""
            ),
            "{svg}"
        );
        assert!(
            svg.contains("<rect x=\"314.00\" y=\"72.0\" width=\"52.50\" height=\"18\""),
            "{svg}"
        );
        // Ticks every 256 KiB over 4 MiB: 17 ticks, labels 0, 1M .. 4M.
        assert_eq!(svg.matches("<line ").count(), 17);
        for label in [">0<", ">1M<", ">2M<", ">3M<", ">4M<"] {
            assert!(svg.contains(label), "{label}");
        }
        // phy-sized regions (4 KiB = 0.82 units) are still drawn, one unit wide.
        let small = PartitionTable::new(vec![part("phy_init", 1, 1, 0xf000, 0x1000)]);
        let svg = FlashMap::of_image(&image_with(&small)).to_svg("t");
        assert!(
            svg.contains("width=\"1.00\" height=\"30\" fill=\"#84cc16\""),
            "{svg}"
        );
    }

    #[test]
    fn hostile_names_are_escaped_and_a_layout_past_the_flash_end_is_marked() {
        let table = PartitionTable::new(vec![
            part("<script>&\"'", 1, 0x99, 0x9000, 0x1000),
            part("big", 0, 0, 0x10_0000, 0x40_0000),
        ]);
        let map = FlashMap::of_image(&image_with(&table));
        assert_eq!(map.extent(), 0x50_0000);
        let svg = map.to_svg("</svg><script>");
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;&amp;&quot;&#39;"));
        assert!(svg.contains("flash ends here"));
    }

    #[test]
    fn an_image_without_a_table_still_shows_its_parts() {
        let mut image = image_with(&PartitionTable::default());
        image.segments.retain(|s| s.name != "partition-table");
        let map = FlashMap::of_image(&image);
        assert!(map.regions.is_empty());
        assert_eq!(map.parts.len(), 2);
        assert!(map.to_svg("x").ends_with("</svg>\n"));
    }

    #[test]
    fn inputs_without_a_layout_are_refused_with_the_kind() {
        let nvs = vec![0xFFu8; 0x3000];
        let mut nvs = nvs;
        nvs[..4].copy_from_slice(&0xFFFF_FFFEu32.to_le_bytes());
        let err = FlashMap::of_bytes(&nvs).unwrap_err();
        assert_eq!(err, FlashMapError::NoLayout { kind: "nvs" });
        assert!(matches!(
            FlashMap::of_bytes(b"").unwrap_err(),
            FlashMapError::Inspect(inspect::InspectError::Unrecognised { .. })
        ));
    }

    #[test]
    fn a_bare_table_gets_the_smallest_flash_that_holds_it() {
        let table = PartitionTable::new(vec![part("factory", 0, 0, 0x10_0000, 0x10_0000)]);
        let map = FlashMap::of_bytes(&table.to_bytes(true).unwrap()).unwrap();
        assert_eq!(map.flash_size, 2 << 20);
        assert_eq!(map.chip, None);
        assert!(map.parts.is_empty());
        assert_eq!(map.regions[0].name, "partition-table");
    }
}
