/**
 * hnsproxy's Windows icon, drawn in code so that no binary asset lives in the
 * repository: a blue rounded square (Kubernetes blue) with a white hexagon
 * ring and a centre dot, anti-aliased by supersampling, at 16, 32 and 48
 * pixels, packed as a 32-bit ICO (BMP images with an AND mask).
 *
 * The output is deterministic: the same bytes on every run.
 *
 * @module
 */

/** The sizes packed into the icon, in pixels (square). */
export const ICON_SIZES: readonly number[] = [16, 32, 48];

const BLUE: readonly [number, number, number] = [0x32, 0x6c, 0xe5];
const WHITE: readonly [number, number, number] = [0xff, 0xff, 0xff];
const SAMPLES = 4; // per axis, per pixel

/** Signed distance to a box of half-size `b` with corners rounded by `r`. */
function roundBox(x: number, y: number, b: number, r: number): number {
  const qx = Math.abs(x) - b + r;
  const qy = Math.abs(y) - b + r;
  const outside = Math.hypot(Math.max(qx, 0), Math.max(qy, 0));
  return outside + Math.min(Math.max(qx, qy), 0) - r;
}

/** Signed distance to a regular hexagon (flat top/bottom) of inner radius `r`. */
function hexagon(x: number, y: number, r: number): number {
  const kx = -0.866025404, ky = 0.5, kz = 0.577350269;
  let px = Math.abs(x), py = Math.abs(y);
  const d = 2 * Math.min(kx * px + ky * py, 0);
  px -= d * kx;
  py -= d * ky;
  px -= Math.min(Math.max(px, -kz * r), kz * r);
  py -= r;
  return Math.hypot(px, py) * Math.sign(py);
}

/** Colour and coverage of one point in [-1, 1]²: background, glyph, or nothing. */
function sample(x: number, y: number): "glyph" | "background" | null {
  if (roundBox(x, y, 0.94, 0.3) > 0) return null;
  if (Math.abs(hexagon(x, y, 0.5)) < 0.1 || Math.hypot(x, y) < 0.17) return "glyph";
  return "background";
}

/** The icon at `size`×`size` as straight (not premultiplied) RGBA rows, top row first. */
export function renderIcon(size: number): Uint8Array {
  const rgba = new Uint8Array(size * size * 4);
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      let bg = 0, fg = 0;
      for (let sy = 0; sy < SAMPLES; sy++) {
        for (let sx = 0; sx < SAMPLES; sx++) {
          const x = ((px + (sx + 0.5) / SAMPLES) / size) * 2 - 1;
          const y = ((py + (sy + 0.5) / SAMPLES) / size) * 2 - 1;
          const s = sample(x, y);
          if (s === "background") bg++;
          else if (s === "glyph") fg++;
        }
      }
      const covered = bg + fg;
      const o = (py * size + px) * 4;
      if (covered === 0) continue;
      for (let c = 0; c < 3; c++) {
        rgba[o + c] = Math.round((BLUE[c] * bg + WHITE[c] * fg) / covered);
      }
      rgba[o + 3] = Math.round((255 * covered) / (SAMPLES * SAMPLES));
    }
  }
  return rgba;
}

/**
 * One ICO image: a BITMAPINFOHEADER (height doubled, as ICO wants), the BGRA
 * pixels bottom row first, then the 1-bit AND mask (set where fully transparent).
 */
export function bmpImage(size: number, rgba: Uint8Array): Uint8Array {
  const maskRow = Math.ceil(size / 32) * 4;
  const pixels = size * size * 4;
  const out = new Uint8Array(40 + pixels + maskRow * size);
  const v = new DataView(out.buffer);
  v.setUint32(0, 40, true); // biSize
  v.setInt32(4, size, true); // biWidth
  v.setInt32(8, size * 2, true); // biHeight: XOR + AND bitmaps
  v.setUint16(12, 1, true); // biPlanes
  v.setUint16(14, 32, true); // biBitCount
  v.setUint32(16, 0, true); // BI_RGB
  v.setUint32(20, pixels + maskRow * size, true); // biSizeImage
  for (let row = 0; row < size; row++) {
    const src = (size - 1 - row) * size * 4; // bottom-up
    for (let x = 0; x < size; x++) {
      const s = src + x * 4, d = 40 + (row * size + x) * 4;
      out[d] = rgba[s + 2];
      out[d + 1] = rgba[s + 1];
      out[d + 2] = rgba[s];
      out[d + 3] = rgba[s + 3];
      if (rgba[s + 3] === 0) out[40 + pixels + row * maskRow + (x >> 3)] |= 0x80 >> (x & 7);
    }
  }
  return out;
}

/** The images of {@link hnsproxyIcon}, in {@link ICON_SIZES} order. */
export function iconImages(): Uint8Array[] {
  return ICON_SIZES.map((size) => bmpImage(size, renderIcon(size)));
}

/** The complete `.ico` file. */
export function hnsproxyIcon(): Uint8Array {
  const images = iconImages();
  const header = 6 + 16 * images.length;
  const out = new Uint8Array(header + images.reduce((n, i) => n + i.length, 0));
  const v = new DataView(out.buffer);
  v.setUint16(0, 0, true); // reserved
  v.setUint16(2, 1, true); // type: icon
  v.setUint16(4, images.length, true);
  let offset = header;
  images.forEach((image, i) => {
    const size = ICON_SIZES[i];
    const e = 6 + 16 * i;
    out[e] = size >= 256 ? 0 : size;
    out[e + 1] = size >= 256 ? 0 : size;
    v.setUint16(e + 4, 1, true); // planes
    v.setUint16(e + 6, 32, true); // bits per pixel
    v.setUint32(e + 8, image.length, true);
    v.setUint32(e + 12, offset, true);
    out.set(image, offset);
    offset += image.length;
  });
  return out;
}
