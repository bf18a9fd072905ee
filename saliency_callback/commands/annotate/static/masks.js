// Mask operations on one probe's mask: a Uint8Array of width * height bytes, 1 = object.
// Pixel (x, y) covers [x, x + 1) x [y, y + 1); its centre is (x + 0.5, y + 0.5).

// Fills the box [x0, x1) x [y0, y1) (end excluded) and clears everything else.
export function fillBox(mask, width, height, box) {
  mask.fill(0);
  const [x0, y0, x1, y1] = box;
  for (let y = Math.max(0, y0); y < Math.min(height, y1); y++) {
    mask.fill(1, y * width + Math.max(0, x0), y * width + Math.min(width, x1));
  }
}

// Sets (value 1) or clears (value 0) every pixel whose centre lies within `radius` of the
// segment from a to b (points in image coordinates).
export function stampSegment(mask, width, height, a, b, radius, value) {
  const r2 = radius * radius;
  const xmin = Math.max(0, Math.floor(Math.min(a.x, b.x) - radius));
  const xmax = Math.min(width - 1, Math.ceil(Math.max(a.x, b.x) + radius));
  const ymin = Math.max(0, Math.floor(Math.min(a.y, b.y) - radius));
  const ymax = Math.min(height - 1, Math.ceil(Math.max(a.y, b.y) + radius));
  const dx = b.x - a.x, dy = b.y - a.y, len2 = dx * dx + dy * dy;
  for (let y = ymin; y <= ymax; y++) {
    const py = y + 0.5;
    for (let x = xmin; x <= xmax; x++) {
      const px = x + 0.5;
      let t = len2 > 0 ? ((px - a.x) * dx + (py - a.y) * dy) / len2 : 0;
      t = t < 0 ? 0 : t > 1 ? 1 : t;
      const ex = a.x + t * dx - px, ey = a.y + t * dy - py;
      if (ex * ex + ey * ey <= r2) mask[y * width + x] = value;
    }
  }
}

export function isEmpty(mask) {
  for (let i = 0; i < mask.length; i++) if (mask[i]) return false;
  return true;
}

function isEdge(mask, width, height, x, y) {
  const i = y * width + x;
  return x === 0 || y === 0 || x === width - 1 || y === height - 1 ||
    !mask[i - 1] || !mask[i + 1] || !mask[i - width] || !mask[i + width];
}

// The mask as RGBA pixels to lay over the image: the background dimmed, the object clear, its
// outline (the object's pixels next to the background) in colour. An empty mask dims nothing.
export function overlayPixels(mask, width, height, out, rgb, dim = 130) {
  const [r, g, b] = rgb;
  const empty = isEmpty(mask);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x, o = i * 4;
      if (!mask[i]) {
        out[o] = out[o + 1] = out[o + 2] = 0; out[o + 3] = empty ? 0 : dim;
      } else if (isEdge(mask, width, height, x, y)) {
        out[o] = r; out[o + 1] = g; out[o + 2] = b; out[o + 3] = 255;
      } else {
        out[o + 3] = 0;
      }
    }
  }
  return out;
}

// A thumbnail (tw x th, nearest sampling) of the image with the mask shown the same way:
// the background dimmed, the outline in colour (an empty mask dims nothing).
export function thumbnailPixels(image, mask, width, height, tw, th, out, rgb) {
  const [r, g, b] = rgb;
  const small = new Uint8Array(tw * th);
  const src = new Uint32Array(tw * th);
  for (let y = 0; y < th; y++) {
    const sy = Math.min(height - 1, Math.floor(((y + 0.5) * height) / th));
    for (let x = 0; x < tw; x++) {
      const sx = Math.min(width - 1, Math.floor(((x + 0.5) * width) / tw));
      src[y * tw + x] = sy * width + sx;
      small[y * tw + x] = mask[sy * width + sx];
    }
  }
  const empty = isEmpty(small);
  for (let y = 0; y < th; y++) {
    for (let x = 0; x < tw; x++) {
      const t = y * tw + x, o = t * 4, s = src[t] * 4;
      if (small[t] && isEdge(small, tw, th, x, y)) {
        out[o] = r; out[o + 1] = g; out[o + 2] = b;
      } else {
        const k = small[t] || empty ? 1 : 0.4;
        out[o] = image[s] * k; out[o + 1] = image[s + 1] * k; out[o + 2] = image[s + 2] * k;
      }
      out[o + 3] = 255;
    }
  }
  return out;
}

export function toBase64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}
