//! 3D outputs as glTF binary (`.glb`): the relief mesh the `local` provider builds from an image, a
//! reader that checks a GLB a provider returned and counts its vertices, and a point render used as
//! the preview when a provider gives none.

use image::{Rgb, RgbImage};
use serde_json::{Value, json};

pub const CONTENT_TYPE: &str = "model/gltf-binary";
const MAGIC: &[u8; 4] = b"glTF";
const JSON_CHUNK: u32 = 0x4E4F_534A;
const BIN_CHUNK: u32 = 0x004E_4942;
const FLOAT: u32 = 5126;
const UNSIGNED_SHORT: u32 = 5123;
const ARRAY_BUFFER: u32 = 34962;
const ELEMENT_ARRAY_BUFFER: u32 = 34963;

/// A relief of `image`: a grid of `grid`×`grid` vertices lifted by brightness and textured with the
/// image itself (embedded as PNG). Returns the GLB and its vertex count.
pub fn relief(image: &RgbImage, grid: u32, texture_png: &[u8]) -> (Vec<u8>, u32) {
    let n = grid.clamp(2, 255) as usize;
    let (w, h) = (image.width().max(1), image.height().max(1));
    let aspect = w as f32 / h as f32;
    let (half_x, half_y) = if aspect >= 1.0 {
        (1.0, 1.0 / aspect)
    } else {
        (aspect, 1.0)
    };
    let height_at = |i: usize, j: usize| -> f32 {
        let x = ((i as f32 / (n - 1) as f32) * (w - 1) as f32).round() as u32;
        let y = ((j as f32 / (n - 1) as f32) * (h - 1) as f32).round() as u32;
        let Rgb([r, g, b]) = *image.get_pixel(x, y);
        (0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b)) / 255.0 * 0.3
    };
    let mut positions = Vec::with_capacity(n * n * 3);
    let mut normals = Vec::with_capacity(n * n * 3);
    let mut uvs = Vec::with_capacity(n * n * 2);
    let step_x = 2.0 * half_x / (n - 1) as f32;
    let step_y = 2.0 * half_y / (n - 1) as f32;
    for j in 0..n {
        for i in 0..n {
            let u = i as f32 / (n - 1) as f32;
            let v = j as f32 / (n - 1) as f32;
            positions.extend([
                -half_x + u * 2.0 * half_x,
                half_y - v * 2.0 * half_y,
                height_at(i, j),
            ]);
            // Central differences of the height field give the surface normal.
            let dx = (height_at((i + 1).min(n - 1), j) - height_at(i.saturating_sub(1), j))
                / (2.0 * step_x);
            let dy = (height_at(i, j.saturating_sub(1)) - height_at(i, (j + 1).min(n - 1)))
                / (2.0 * step_y);
            let len = (dx * dx + dy * dy + 1.0).sqrt();
            normals.extend([-dx / len, -dy / len, 1.0 / len]);
            uvs.extend([u, v]);
        }
    }
    let mut indices: Vec<u16> = Vec::with_capacity((n - 1) * (n - 1) * 6);
    for j in 0..n - 1 {
        for i in 0..n - 1 {
            let at = |i: usize, j: usize| (j * n + i) as u16;
            indices.extend([at(i, j), at(i, j + 1), at(i + 1, j)]);
            indices.extend([at(i + 1, j), at(i, j + 1), at(i + 1, j + 1)]);
        }
    }
    let (mut min, mut max) = ([f32::MAX; 3], [f32::MIN; 3]);
    for p in positions.chunks(3) {
        for k in 0..3 {
            min[k] = min[k].min(p[k]);
            max[k] = max[k].max(p[k]);
        }
    }
    let mut bin = Vec::new();
    let mut views = Vec::new();
    let mut push = |bytes: &[u8], target: Option<u32>| {
        let offset = bin.len();
        bin.extend_from_slice(bytes);
        while !bin.len().is_multiple_of(4) {
            bin.push(0);
        }
        let mut view = json!({"buffer": 0, "byteOffset": offset, "byteLength": bytes.len()});
        if let Some(target) = target {
            view["target"] = json!(target);
        }
        views.push(view);
        views.len() - 1
    };
    let floats = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    let count = n * n;
    let position_view = push(&floats(&positions), Some(ARRAY_BUFFER));
    let normal_view = push(&floats(&normals), Some(ARRAY_BUFFER));
    let uv_view = push(&floats(&uvs), Some(ARRAY_BUFFER));
    let index_bytes: Vec<u8> = indices.iter().flat_map(|i| i.to_le_bytes()).collect();
    let index_view = push(&index_bytes, Some(ELEMENT_ARRAY_BUFFER));
    let image_view = push(texture_png, None);
    let document = json!({
        "asset": {"version": "2.0", "generator": "Easel relief"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{
            "attributes": {"POSITION": 0, "NORMAL": 1, "TEXCOORD_0": 2},
            "indices": 3,
            "material": 0
        }]}],
        "materials": [{
            "pbrMetallicRoughness": {"baseColorTexture": {"index": 0}, "metallicFactor": 0.0, "roughnessFactor": 0.9},
            "doubleSided": true
        }],
        "textures": [{"sampler": 0, "source": 0}],
        "samplers": [{"magFilter": 9729, "minFilter": 9729, "wrapS": 33071, "wrapT": 33071}],
        "images": [{"bufferView": image_view, "mimeType": "image/png"}],
        "accessors": [
            {"bufferView": position_view, "componentType": FLOAT, "count": count, "type": "VEC3", "min": min, "max": max},
            {"bufferView": normal_view, "componentType": FLOAT, "count": count, "type": "VEC3"},
            {"bufferView": uv_view, "componentType": FLOAT, "count": count, "type": "VEC2"},
            {"bufferView": index_view, "componentType": UNSIGNED_SHORT, "count": indices.len(), "type": "SCALAR"}
        ],
        "bufferViews": views,
        "buffers": [{"byteLength": bin.len()}]
    });
    (glb(&document, &bin), count as u32)
}

/// Packs a glTF document and its binary buffer as GLB.
fn glb(document: &Value, bin: &[u8]) -> Vec<u8> {
    let mut json = document.to_string().into_bytes();
    while !json.len().is_multiple_of(4) {
        json.push(b' ');
    }
    let total = 12 + 8 + json.len() + 8 + bin.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&2_u32.to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&JSON_CHUNK.to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&(bin.len() as u32).to_le_bytes());
    out.extend_from_slice(&BIN_CHUNK.to_le_bytes());
    out.extend_from_slice(bin);
    out
}

/// What we learn from a GLB: that it is one, how many vertices it has, and where they are.
#[derive(Debug, Clone)]
pub struct GlbInfo {
    pub vertex_count: u32,
    pub positions: Vec<[f32; 3]>,
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
}

/// Reads a GLB's header, JSON and binary chunk, and the positions of its meshes.
pub fn inspect(bytes: &[u8]) -> anyhow::Result<GlbInfo> {
    anyhow::ensure!(bytes.get(..4) == Some(MAGIC), "not a glTF binary");
    anyhow::ensure!(u32_at(bytes, 4) == Some(2), "only glTF 2.0 is accepted");
    anyhow::ensure!(
        u32_at(bytes, 8).map(|n| n as usize) == Some(bytes.len()),
        "the GLB's length field does not match its size"
    );
    let json_len = u32_at(bytes, 12).ok_or_else(|| anyhow::anyhow!("truncated GLB"))? as usize;
    anyhow::ensure!(
        u32_at(bytes, 16) == Some(JSON_CHUNK),
        "the first chunk is not JSON"
    );
    let json = bytes
        .get(20..20 + json_len)
        .ok_or_else(|| anyhow::anyhow!("truncated JSON chunk"))?;
    let document: Value = serde_json::from_slice(json)?;
    anyhow::ensure!(
        document["asset"]["version"]
            .as_str()
            .is_some_and(|v| v.starts_with('2')),
        "asset.version must be 2.x"
    );
    let bin_at = 20 + json_len;
    let bin = match (u32_at(bytes, bin_at), u32_at(bytes, bin_at + 4)) {
        (Some(len), Some(BIN_CHUNK)) => bytes.get(bin_at + 8..bin_at + 8 + len as usize),
        _ => None,
    };
    let mut vertex_count: u32 = 0;
    let mut positions = Vec::new();
    let mut seen = Vec::new();
    for mesh in document["meshes"].as_array().into_iter().flatten() {
        for primitive in mesh["primitives"].as_array().into_iter().flatten() {
            let Some(index) = primitive["attributes"]["POSITION"].as_u64() else {
                continue;
            };
            if seen.contains(&index) {
                continue;
            }
            seen.push(index);
            let accessor = &document["accessors"][index as usize];
            let count = accessor["count"].as_u64().unwrap_or(0);
            vertex_count = vertex_count.saturating_add(u32::try_from(count).unwrap_or(u32::MAX));
            if let Some(bin) = bin {
                read_positions(&document, accessor, bin, &mut positions);
            }
        }
    }
    Ok(GlbInfo {
        vertex_count,
        positions,
    })
}

/// Appends an accessor's VEC3 floats (when it is one, in the GLB's own buffer) to `out`.
fn read_positions(document: &Value, accessor: &Value, bin: &[u8], out: &mut Vec<[f32; 3]>) {
    if accessor["componentType"].as_u64() != Some(u64::from(FLOAT)) || accessor["type"] != "VEC3" {
        return;
    }
    let Some(view) = accessor["bufferView"]
        .as_u64()
        .map(|v| &document["bufferViews"][v as usize])
    else {
        return;
    };
    if view["buffer"].as_u64() != Some(0) {
        return;
    }
    let start =
        view["byteOffset"].as_u64().unwrap_or(0) + accessor["byteOffset"].as_u64().unwrap_or(0);
    let stride = view["byteStride"].as_u64().unwrap_or(12).max(12);
    let count = accessor["count"].as_u64().unwrap_or(0).min(1_000_000);
    for i in 0..count {
        let at = (start + i * stride) as usize;
        let read = |k: usize| {
            bin.get(at + 4 * k..at + 4 * k + 4)
                .and_then(|b| b.try_into().ok())
                .map(f32::from_le_bytes)
        };
        match (read(0), read(1), read(2)) {
            (Some(x), Some(y), Some(z)) if x.is_finite() && y.is_finite() && z.is_finite() => {
                out.push([x, y, z])
            }
            _ => return,
        }
    }
}

/// A front view of the vertices as shaded points, nearer points lighter: the preview of a model a
/// provider returned without one.
pub fn point_preview(positions: &[[f32; 3]], size: u32) -> RgbImage {
    let mut image = RgbImage::from_pixel(size, size, Rgb([36, 38, 44]));
    if positions.is_empty() {
        return image;
    }
    let (mut min, mut max) = ([f32::MAX; 3], [f32::MIN; 3]);
    for p in positions {
        for k in 0..3 {
            min[k] = min[k].min(p[k]);
            max[k] = max[k].max(p[k]);
        }
    }
    let span = (max[0] - min[0]).max(max[1] - min[1]).max(1e-6);
    let depth = (max[2] - min[2]).max(1e-6);
    let scale = (size as f32 - 8.0) / span;
    let mut nearest = vec![f32::MIN; (size * size) as usize];
    for p in positions {
        let x = 4.0 + (p[0] - min[0]) * scale + (span - (max[0] - min[0])) * scale / 2.0;
        let y = 4.0 + (max[1] - p[1]) * scale + (span - (max[1] - min[1])) * scale / 2.0;
        let (x, y) = (x as u32, y as u32);
        if x + 1 >= size || y + 1 >= size {
            continue;
        }
        let shade = 0.35 + 0.65 * (p[2] - min[2]) / depth;
        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let at = ((y + dy) * size + x + dx) as usize;
            if p[2] > nearest[at] {
                nearest[at] = p[2];
                let v = (shade * 235.0) as u8;
                image.put_pixel(
                    x + dx,
                    y + dy,
                    Rgb([v, v, (f32::from(v) * 1.05).min(255.0) as u8]),
                );
            }
        }
    }
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relief_reads_back_with_its_vertices() -> anyhow::Result<()> {
        let image = RgbImage::from_fn(40, 30, |x, y| Rgb([(x * 6) as u8, (y * 8) as u8, 90]));
        let (glb, count) = relief(&image, 16, b"\x89PNG fake texture");
        assert_eq!(count, 256);
        assert_eq!(glb.len() % 4, 0);
        let info = inspect(&glb)?;
        assert_eq!(info.vertex_count, 256);
        assert_eq!(info.positions.len(), 256);
        // Wider than tall: x spans [-1, 1], y less.
        assert!(
            info.positions
                .iter()
                .all(|p| p[0].abs() <= 1.0 && p[1].abs() <= 0.75 + 1e-6)
        );
        let preview = point_preview(&info.positions, 64);
        assert!(preview.pixels().any(|p| p.0[0] > 100), "points drawn");
        Ok(())
    }

    #[test]
    fn not_a_glb_is_refused() {
        assert!(inspect(b"not a model at all").is_err());
        let mut glb = relief(&RgbImage::new(4, 4), 2, b"").0;
        glb.push(0);
        assert!(inspect(&glb).is_err(), "length mismatch");
    }
}
