// "Why similar?" similarity maps (docs/ATLAS contract; Python twin: convnet_search/atlas.py
// similarity_map). For a layer's spatial map F_x (h×w×C, row-major, channels last) of image x and
// the mean-pooled vector v_y of image y: S_x[i,j] = cos(F_x[i,j,:], v_y), 0 where either norm is 0.
// "Why is r similar to q": S_r against v_q over r, S_q against v_r over q.

export interface SpatialMap {
  data: Float32Array; // h·w·c, [y][x][channel]
  h: number;
  w: number;
  c: number;
}

/** Mean over positions: the average-pooled vector, in float64 for a stable sum. */
export function meanPool(f: SpatialMap): Float64Array {
  const v = new Float64Array(f.c);
  const n = f.h * f.w;
  for (let p = 0; p < n; p++) {
    const o = p * f.c;
    for (let k = 0; k < f.c; k++) v[k]! += f.data[o + k]!;
  }
  if (n > 0) for (let k = 0; k < f.c; k++) v[k]! /= n;
  return v;
}

/** S[i,j] = cos(F[i,j,:], v), h·w values row-major; 0 where either norm is 0. */
export function similarityMap(f: SpatialMap, v: ArrayLike<number>): Float32Array {
  if (v.length !== f.c) throw new Error(`similarityMap: vector has ${v.length} values, the map ${f.c} channels`);
  if (f.data.length !== f.h * f.w * f.c) throw new Error(`similarityMap: ${f.data.length} values for ${f.h}×${f.w}×${f.c}`);
  let vv = 0;
  for (let k = 0; k < f.c; k++) vv += v[k]! * v[k]!;
  const vn = Math.sqrt(vv);
  const out = new Float32Array(f.h * f.w);
  if (vn === 0) return out;
  for (let p = 0; p < f.h * f.w; p++) {
    const o = p * f.c;
    let dot = 0;
    let ff = 0;
    for (let k = 0; k < f.c; k++) {
      const a = f.data[o + k]!;
      dot += a * v[k]!;
      ff += a * a;
    }
    out[p] = ff === 0 ? 0 : dot / (Math.sqrt(ff) * vn);
  }
  return out;
}

/** Both maps of "why is `result` similar to `query`": each image's map against the other's mean. */
export function whySimilar(query: SpatialMap, result: SpatialMap): { query: Float32Array; result: Float32Array } {
  if (query.c !== result.c) throw new Error(`whySimilar: ${query.c} vs ${result.c} channels`);
  return { query: similarityMap(query, meanPool(result)), result: similarityMap(result, meanPool(query)) };
}
