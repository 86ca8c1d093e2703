// Raw WebGL for the UMAP map: every image as a round point (one draw call for 10⁵ points), and,
// zoomed in, textured quads cut from the bundle's thumbnail sprite sheets (PixPlot's approach).
// Positions are in data space [0,1]²; a uniform maps them to clip space, so pan/zoom only changes
// two uniforms and the point buffers are uploaded once per map.
import type { PlotTransform } from '../data/score';

const POINT_VS = `
attribute vec2 a_pos;
attribute vec3 a_color;
uniform vec2 u_scale;
uniform vec2 u_offset;
uniform float u_size;
varying vec3 v_color;
void main() {
  gl_Position = vec4(a_pos * u_scale + u_offset, 0.0, 1.0);
  gl_PointSize = u_size;
  v_color = a_color;
}`;
const POINT_FS = `
precision mediump float;
varying vec3 v_color;
uniform float u_alpha;
void main() {
  vec2 d = gl_PointCoord - vec2(0.5);
  if (dot(d, d) > 0.25) discard;
  gl_FragColor = vec4(v_color * u_alpha, u_alpha);
}`;
const QUAD_VS = `
attribute vec2 a_pos;
attribute vec2 a_uv;
varying vec2 v_uv;
void main() {
  gl_Position = vec4(a_pos, 0.0, 1.0);
  v_uv = a_uv;
}`;
const QUAD_FS = `
precision mediump float;
varying vec2 v_uv;
uniform sampler2D u_tex;
void main() { gl_FragColor = texture2D(u_tex, v_uv); }`;

function compile(gl: WebGLRenderingContext, vs: string, fs: string): WebGLProgram {
  const prog = gl.createProgram()!;
  for (const [type, src] of [[gl.VERTEX_SHADER, vs], [gl.FRAGMENT_SHADER, fs]] as const) {
    const sh = gl.createShader(type)!;
    gl.shaderSource(sh, src);
    gl.compileShader(sh);
    if (!gl.getShaderParameter(sh, gl.COMPILE_STATUS)) throw new Error(`map shader: ${gl.getShaderInfoLog(sh) ?? ''}`);
    gl.attachShader(prog, sh);
  }
  gl.linkProgram(prog);
  if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(`map program: ${gl.getProgramInfoLog(prog) ?? ''}`);
  return prog;
}

/** A quad to draw: image id's cell (u0, v0)–(u1, v1) of a sheet, centred at (x, y) data space. */
export interface Quad {
  x: number;
  y: number;
  u0: number;
  v0: number;
  u1: number;
  v1: number;
}

export class MapGL {
  private readonly gl: WebGLRenderingContext;
  private readonly points: WebGLProgram;
  private readonly quads: WebGLProgram;
  private readonly posBuf: WebGLBuffer;
  private readonly colorBuf: WebGLBuffer;
  private readonly quadBuf: WebGLBuffer;
  private count = 0;
  private readonly textures = new Map<string, WebGLTexture>();

  constructor(canvas: HTMLCanvasElement) {
    // preserveDrawingBuffer: the e2e tests and screenshots read the pixels back.
    const gl = canvas.getContext('webgl', { antialias: false, premultipliedAlpha: true, preserveDrawingBuffer: true, alpha: true });
    if (!gl) throw new Error('WebGL is not available in this browser');
    this.gl = gl;
    this.points = compile(gl, POINT_VS, POINT_FS);
    this.quads = compile(gl, QUAD_VS, QUAD_FS);
    this.posBuf = gl.createBuffer()!;
    this.colorBuf = gl.createBuffer()!;
    this.quadBuf = gl.createBuffer()!;
  }

  /** Uploads positions ([N·2] data space) and colours ([N·3] 0…1) once per map. */
  setPoints(xy: Float32Array, rgb: Float32Array): void {
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.posBuf);
    gl.bufferData(gl.ARRAY_BUFFER, xy, gl.STATIC_DRAW);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.colorBuf);
    gl.bufferData(gl.ARRAY_BUFFER, rgb, gl.STATIC_DRAW);
    this.count = xy.length / 2;
  }

  hasTexture(url: string): boolean {
    return this.textures.has(url);
  }

  addTexture(url: string, img: TexImageSource): void {
    const gl = this.gl;
    const tex = gl.createTexture()!;
    gl.bindTexture(gl.TEXTURE_2D, tex);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, img);
    // Sheets are not powers of two in height: no mipmaps, clamp.
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    this.textures.set(url, tex);
  }

  /** Keeps the textures whose url is in `keep` (bounded GPU memory when panning far). */
  dropTextures(keep: Set<string>): void {
    for (const [url, tex] of this.textures) {
      if (!keep.has(url)) {
        this.gl.deleteTexture(tex);
        this.textures.delete(url);
      }
    }
  }

  get textureCount(): number {
    return this.textures.size;
  }

  /**
   * Draws the points with transform t (CSS px of a w × h canvas, device pixel ratio dpr), point
   * diameter `size` CSS px, then per sheet the thumbnail quads of `quadPx` CSS px.
   */
  draw(t: PlotTransform, w: number, h: number, dpr: number, size: number, alpha: number, sheets: Map<string, Quad[]>, quadPx: number, sync = false): void {
    const gl = this.gl;
    gl.viewport(0, 0, gl.drawingBufferWidth, gl.drawingBufferHeight);
    gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
    // data (x, y) → CSS px (ox + x·S, oy + (1 − y)·S) → clip space
    const sx = (2 * t.scale) / w, sy = (2 * t.scale) / h;
    const ox = (2 * t.ox) / w - 1, oy = 1 - (2 * (t.oy + t.scale)) / h;
    gl.useProgram(this.points);
    gl.uniform2f(gl.getUniformLocation(this.points, 'u_scale'), sx, sy);
    gl.uniform2f(gl.getUniformLocation(this.points, 'u_offset'), ox, oy);
    gl.uniform1f(gl.getUniformLocation(this.points, 'u_size'), size * dpr);
    gl.uniform1f(gl.getUniformLocation(this.points, 'u_alpha'), alpha);
    this.attrib(this.points, 'a_pos', this.posBuf, 2);
    this.attrib(this.points, 'a_color', this.colorBuf, 3);
    gl.drawArrays(gl.POINTS, 0, this.count);
    gl.disableVertexAttribArray(gl.getAttribLocation(this.points, 'a_color'));
    if (sheets.size) this.drawQuads(sx, sy, ox, oy, w, h, sheets, quadPx);
    // sync (measurements only): wait for the GPU, so a timing covers the rendering, not only its submission
    if (sync) gl.finish();
  }

  private drawQuads(sx: number, sy: number, ox: number, oy: number, w: number, h: number, sheets: Map<string, Quad[]>, quadPx: number): void {
    const gl = this.gl;
    gl.useProgram(this.quads);
    gl.uniform1i(gl.getUniformLocation(this.quads, 'u_tex'), 0);
    gl.activeTexture(gl.TEXTURE0);
    const hw = quadPx / w, hh = quadPx / h;  // half size in clip units (clip spans 2)
    for (const [url, quads] of sheets) {
      const tex = this.textures.get(url);
      if (!tex || !quads.length) continue;
      const v = new Float32Array(quads.length * 24);
      let o = 0;
      for (const q of quads) {
        const cx = q.x * sx + ox, cy = q.y * sy + oy;
        const x0 = cx - hw, x1 = cx + hw, y0 = cy - hh, y1 = cy + hh;
        // two triangles; texture v grows downwards in the sheet, clip y upwards
        for (const [x, y, u, vv] of [[x0, y1, q.u0, q.v0], [x1, y1, q.u1, q.v0], [x0, y0, q.u0, q.v1], [x1, y1, q.u1, q.v0], [x1, y0, q.u1, q.v1], [x0, y0, q.u0, q.v1]] as const) {
          v[o++] = x; v[o++] = y; v[o++] = u; v[o++] = vv;
        }
      }
      gl.bindTexture(gl.TEXTURE_2D, tex);
      gl.bindBuffer(gl.ARRAY_BUFFER, this.quadBuf);
      gl.bufferData(gl.ARRAY_BUFFER, v, gl.STREAM_DRAW);
      const pos = gl.getAttribLocation(this.quads, 'a_pos'), uv = gl.getAttribLocation(this.quads, 'a_uv');
      gl.enableVertexAttribArray(pos);
      gl.vertexAttribPointer(pos, 2, gl.FLOAT, false, 16, 0);
      gl.enableVertexAttribArray(uv);
      gl.vertexAttribPointer(uv, 2, gl.FLOAT, false, 16, 8);
      gl.drawArrays(gl.TRIANGLES, 0, quads.length * 6);
    }
  }

  private attrib(prog: WebGLProgram, name: string, buf: WebGLBuffer, size: number): void {
    const gl = this.gl;
    const loc = gl.getAttribLocation(prog, name);
    gl.bindBuffer(gl.ARRAY_BUFFER, buf);
    gl.enableVertexAttribArray(loc);
    gl.vertexAttribPointer(loc, size, gl.FLOAT, false, 0, 0);
  }
}
