"""sensor_msgs/Image and sensor_msgs/CompressedImage <-> numpy, without ROS.

Works on any object with the fields of sensor_msgs/Image (``height``, ``width``, ``encoding``,
``is_bigendian``, ``step``, ``data``): rclpy messages (``data`` is an ``array.array``), rosbags
messages (``data`` is a numpy array), or :class:`ImageFields` built here. Nothing in this module
imports rclpy.

Array layout: ``(height, width)`` for one-channel encodings, ``(height, width, channels)``
otherwise, in the channel order of the encoding (``bgr8`` stays BGR), with the encoding's
element type in native byte order. Row padding (``step`` larger than a row) and big-endian data
(``is_bigendian = 1``) are handled on the way in, and produced on request on the way out.

Encodings (ROS ``sensor_msgs/image_encodings.hpp``): rgb8, bgr8, rgba8, bgra8, rgb16, bgr16,
rgba16, bgra16, mono8, mono16, the generic ``<8U|8S|16U|16S|32S|32F|64F>C<n>`` (8UC1, 16UC1,
32FC1, ...), bayer_{rggb,bggr,gbrg,grbg}{8,16}, and the packed 4:2:2 formats ``yuv422``/``uyvy``
(U Y0 V Y1) and ``yuv422_yuy2``/``yuyv`` (Y0 U Y1 V), stored as 2 uint8 channels per pixel.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np


class ImageEncodingError(ValueError):
    """An image cannot be converted: unknown encoding, inconsistent sizes, undecodable data."""


@dataclass(frozen=True)
class EncodingInfo:
    name: str
    dtype: np.dtype          # element type (native byte order)
    channels: int
    kind: str                # 'color', 'mono', 'generic', 'bayer', 'yuv422'
    order: str = ''          # colour: rgb/bgr/rgba/bgra; bayer: rggb/...; yuv422: uyvy/yuyv


_U8, _U16 = np.dtype(np.uint8), np.dtype(np.uint16)


def _named() -> dict[str, EncodingInfo]:
    table = {}
    for order in ('rgb', 'bgr', 'rgba', 'bgra'):
        for bits, dt in ((8, _U8), (16, _U16)):
            name = f'{order}{bits}'
            table[name] = EncodingInfo(name, dt, len(order), 'color', order)
    table['mono8'] = EncodingInfo('mono8', _U8, 1, 'mono')
    table['mono16'] = EncodingInfo('mono16', _U16, 1, 'mono')
    for pattern in ('rggb', 'bggr', 'gbrg', 'grbg'):
        for bits, dt in ((8, _U8), (16, _U16)):
            name = f'bayer_{pattern}{bits}'
            table[name] = EncodingInfo(name, dt, 1, 'bayer', pattern)
    for name, order in (('yuv422', 'uyvy'), ('uyvy', 'uyvy'), ('yuv422_yuy2', 'yuyv'),
                        ('yuyv', 'yuyv')):
        table[name] = EncodingInfo(name, _U8, 2, 'yuv422', order)
    return table


NAMED_ENCODINGS: dict[str, EncodingInfo] = _named()
_GENERIC_RE = re.compile(r'^(8U|8S|16U|16S|32S|32F|64F)C([1-9][0-9]*)$')
_GENERIC_DTYPES = {'8U': np.uint8, '8S': np.int8, '16U': np.uint16, '16S': np.int16,
                   '32S': np.int32, '32F': np.float32, '64F': np.float64}
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(NAMED_ENCODINGS) + tuple(
    f'{depth}C{n}' for depth in _GENERIC_DTYPES for n in (1, 2, 3, 4))

_BAYER_TO_RGB = {'rggb': cv2.COLOR_BayerRGGB2RGB, 'bggr': cv2.COLOR_BayerBGGR2RGB,
                 'gbrg': cv2.COLOR_BayerGBRG2RGB, 'grbg': cv2.COLOR_BayerGRBG2RGB}
_YUV_TO_RGB = {'uyvy': cv2.COLOR_YUV2RGB_UYVY, 'yuyv': cv2.COLOR_YUV2RGB_YUYV}


def _supported_text() -> str:
    named = ', '.join(NAMED_ENCODINGS)
    return f'{named}, and the generic <8U|8S|16U|16S|32S|32F|64F>C<n> (e.g. 8UC3, 16UC1, 32FC1)'


def encoding_info(encoding: str) -> EncodingInfo:
    """Layout of an encoding; :class:`ImageEncodingError` naming the supported ones if unknown."""
    enc = str(encoding)
    info = NAMED_ENCODINGS.get(enc)
    if info is not None:
        return info
    m = _GENERIC_RE.match(enc)
    if m:
        return EncodingInfo(enc, np.dtype(_GENERIC_DTYPES[m.group(1)]), int(m.group(2)), 'generic')
    raise ImageEncodingError(
        f'unsupported image encoding {enc!r}; supported encodings: {_supported_text()}')


@dataclass
class ImageFields:
    """The fields of a sensor_msgs/Image (no header), ready to be put into any message type."""
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: bytes = field(repr=False)

    def as_kwargs(self, numpy_data: bool = False) -> dict[str, Any]:
        """Keyword arguments for a message constructor. ``numpy_data=True`` for rosbags types
        (their ``data`` is a uint8 numpy array); rclpy accepts ``bytes``."""
        data = np.frombuffer(self.data, dtype=np.uint8) if numpy_data else self.data
        return dict(height=self.height, width=self.width, encoding=self.encoding,
                    is_bigendian=self.is_bigendian, step=self.step, data=data)

    def apply_to(self, msg: Any) -> Any:
        """Set these fields on an existing message (rclpy or rosbags); returns ``msg``."""
        numpy_data = isinstance(getattr(msg, 'data', None), np.ndarray)
        for key, value in self.as_kwargs(numpy_data).items():
            setattr(msg, key, value)
        return msg


@dataclass
class CompressedFields:
    """The fields of a sensor_msgs/CompressedImage (no header)."""
    format: str
    data: bytes = field(repr=False)

    def as_kwargs(self, numpy_data: bool = False) -> dict[str, Any]:
        data = np.frombuffer(self.data, dtype=np.uint8) if numpy_data else self.data
        return dict(format=self.format, data=data)


def _as_uint8_buffer(data: Any) -> np.ndarray:
    if isinstance(data, np.ndarray):
        arr = data if data.dtype == np.uint8 else np.ascontiguousarray(data).view(np.uint8)
        return arr.reshape(-1)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError, BufferError):
        return np.asarray(list(data), dtype=np.uint8)


def _byte_order(bigendian: bool) -> str:
    return '>' if bigendian else '<'


def image_to_numpy(msg: Any, copy: bool = False) -> np.ndarray:
    """Pixels of an Image-like message as a numpy array (see the module doc for the layout).

    Without ``copy`` the result may be a read-only view of ``msg.data``.
    """
    info = encoding_info(msg.encoding)
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    ch, itemsize = info.channels, info.dtype.itemsize
    shape = (h, w) if ch == 1 else (h, w, ch)
    if h == 0 or w == 0:
        return np.zeros(shape, dtype=info.dtype)
    row = w * ch * itemsize
    if step < row:
        raise ImageEncodingError(
            f'{info.name} image {w}x{h}: step {step} is smaller than a row '
            f'({w} px x {ch} ch x {itemsize} B = {row} B)')
    buf = _as_uint8_buffer(msg.data)
    need = step * (h - 1) + row      # the last row's padding may be omitted
    if buf.size < need:
        raise ImageEncodingError(
            f'{info.name} image {w}x{h} with step {step} needs {step * h} bytes of data, '
            f'got {buf.size}')
    if buf.size >= step * h:
        rows = buf[:step * h].reshape(h, step)[:, :row]
    else:
        rows = np.lib.stride_tricks.as_strided(buf, shape=(h, row), strides=(step, 1),
                                               writeable=False)
    dt = info.dtype.newbyteorder(_byte_order(bool(msg.is_bigendian)))
    if itemsize > 1 and (step % itemsize or not rows.flags.c_contiguous):
        rows = np.ascontiguousarray(rows)
    arr = rows.view(dt).reshape(shape)
    if dt.byteorder not in ('=', '|') and dt != info.dtype:   # foreign byte order: swap to native
        arr = arr.astype(info.dtype)
    elif copy:
        arr = arr.copy()
    return arr


def numpy_to_image(arr: np.ndarray, encoding: str, *, bigendian: bool = False,
                   step: int | None = None) -> ImageFields:
    """Image fields from an array laid out as :func:`image_to_numpy` returns it.

    The array's dtype must be the encoding's element type (no silent conversion). ``step`` may
    be larger than a row to produce padded rows; ``bigendian`` writes big-endian elements.
    """
    info = encoding_info(encoding)
    a = np.asarray(arr)
    if a.ndim == 3 and info.channels == 1 and a.shape[2] == 1:
        a = a[:, :, 0]
    if info.channels == 1 and a.ndim != 2 or info.channels > 1 and (
            a.ndim != 3 or a.shape[2] != info.channels):
        want = '(H, W)' if info.channels == 1 else f'(H, W, {info.channels})'
        raise ImageEncodingError(
            f'array of shape {a.shape} does not fit encoding {info.name}: expected {want}')
    if a.dtype.newbyteorder('=') != info.dtype:
        raise ImageEncodingError(
            f'array of dtype {a.dtype} does not fit encoding {info.name}: expected {info.dtype}')
    h, w = int(a.shape[0]), int(a.shape[1])
    row = w * info.channels * info.dtype.itemsize
    step = row if step is None else int(step)
    if step < row:
        raise ImageEncodingError(f'step {step} is smaller than a row of {row} bytes')
    out = np.ascontiguousarray(a, dtype=info.dtype.newbyteorder(_byte_order(bigendian)))
    flat = out.view(np.uint8).reshape(h, row)
    if step > row:
        padded = np.zeros((h, step), dtype=np.uint8)
        padded[:, :row] = flat
        flat = padded
    return ImageFields(height=h, width=w, encoding=info.name, is_bigendian=int(bigendian),
                       step=step, data=flat.tobytes())


def rgb8_image(rgb: np.ndarray) -> ImageFields:
    """Image fields (encoding rgb8) of an (H, W, 3) uint8 RGB array."""
    return numpy_to_image(rgb, 'rgb8')


def _normalise_to_u8(a: np.ndarray, value_range: tuple[float, float] | None) -> np.ndarray:
    x = a.astype(np.float64)
    finite = np.isfinite(x)
    if value_range is None:
        if not finite.any():
            return np.zeros(a.shape, dtype=np.uint8)
        lo, hi = float(x[finite].min()), float(x[finite].max())
    else:
        lo, hi = float(value_range[0]), float(value_range[1])
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    y = np.clip((np.where(finite, x, lo) - lo) * scale, 0, 255)
    return np.rint(y).astype(np.uint8)


def array_to_rgb8(arr: np.ndarray, encoding: str, *,
                  value_range: tuple[float, float] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB for display or processing, from an array in ``encoding``.

    16-bit colour/mono/bayer images keep their top 8 bits. Generic non-8U one-channel images
    (depth: 16UC1, 32FC1, ...) are scaled linearly from ``value_range`` (default: their finite
    min..max) to 0..255 and shown as grey; NaN/inf become 0. Generic 8UC3/8UC4 are taken as RGB(A).
    """
    info = encoding_info(encoding)
    a = np.asarray(arr)
    if info.kind in ('color', 'mono', 'bayer') and info.dtype == _U16:
        if info.kind == 'bayer':
            rgb16 = cv2.cvtColor(np.ascontiguousarray(a), _BAYER_TO_RGB[info.order])
            return (rgb16 >> 8).astype(np.uint8)
        a = (a >> 8).astype(np.uint8)
    if info.kind == 'color':
        if info.order == 'rgb':
            return np.ascontiguousarray(a)
        if info.order == 'bgr':
            return np.ascontiguousarray(a[..., ::-1])
        if info.order == 'rgba':
            return np.ascontiguousarray(a[..., :3])
        return np.ascontiguousarray(a[..., 2::-1])       # bgra
    if info.kind == 'bayer':
        return cv2.cvtColor(np.ascontiguousarray(a), _BAYER_TO_RGB[info.order])
    if info.kind == 'yuv422':
        return cv2.cvtColor(np.ascontiguousarray(a), _YUV_TO_RGB[info.order])
    if info.kind == 'generic' and info.dtype != _U8 or info.dtype == np.int8:
        a = _normalise_to_u8(a, value_range)
    if a.ndim == 2 or a.ndim == 3 and a.shape[2] == 1:
        g = a.reshape(a.shape[0], a.shape[1])
        return np.repeat(g[:, :, None], 3, axis=2)
    if a.shape[2] in (3, 4):
        return np.ascontiguousarray(a[..., :3])
    raise ImageEncodingError(
        f'cannot show a {a.shape[2]}-channel {info.name} image as RGB')


def to_rgb8(msg: Any, *, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an Image-like or CompressedImage-like message."""
    if hasattr(msg, 'format') and not hasattr(msg, 'encoding'):
        return decode_compressed_rgb8(msg.data, msg.format)
    return array_to_rgb8(image_to_numpy(msg), msg.encoding, value_range=value_range)


def to_bgr8(msg: Any, **kwargs: Any) -> np.ndarray:
    """(H, W, 3) uint8 BGR (OpenCV order) of an Image-like or CompressedImage-like message."""
    return np.ascontiguousarray(to_rgb8(msg, **kwargs)[..., ::-1])


# ---------------------------------------------------------------------------- CompressedImage


def _imdecode(data: Any, fmt: str, flags: int) -> np.ndarray:
    if 'compresseddepth' in str(fmt).lower():
        raise ImageEncodingError(
            f'CompressedImage format {fmt!r} (compressedDepth) is not supported; '
            'supported: jpeg and png (image_transport "compressed")')
    buf = _as_uint8_buffer(data)
    img = cv2.imdecode(buf, flags) if buf.size else None
    if img is None:
        raise ImageEncodingError(
            f'could not decode CompressedImage data ({buf.size} bytes, format {fmt!r}): '
            'not a JPEG/PNG image or truncated')
    return img


def decode_compressed_rgb8(data: Any, fmt: str = '') -> np.ndarray:
    """(H, W, 3) uint8 RGB of a JPEG/PNG buffer (CompressedImage.data)."""
    img = _imdecode(data, fmt, cv2.IMREAD_UNCHANGED)
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ImageEncodingError(f'unsupported decoded element type {img.dtype}')
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def decode_compressed(data: Any, fmt: str = '') -> tuple[np.ndarray, str]:
    """Decode a JPEG/PNG buffer without converting it: ``(array, encoding)`` with encoding one of
    mono8, mono16, bgr8, bgr16, bgra8, bgra16 (OpenCV's channel order)."""
    img = _imdecode(data, fmt, cv2.IMREAD_UNCHANGED)
    bits = {np.dtype(np.uint8): '8', np.dtype(np.uint16): '16'}.get(img.dtype)
    if bits is None:
        raise ImageEncodingError(f'unsupported decoded element type {img.dtype}')
    if img.ndim == 2:
        return img, f'mono{bits}'
    return img, (f'bgr{bits}' if img.shape[2] == 3 else f'bgra{bits}')


def encode_compressed(arr: np.ndarray, encoding: str, fmt: str = 'jpeg', *,
                      jpeg_quality: int = 90, png_level: int = 3) -> CompressedFields:
    """CompressedImage fields (image_transport "compressed" conventions) of an array.

    jpeg: 8-bit grey (mono8/8UC1) stays grey, everything else goes through :func:`array_to_rgb8`.
    png: also keeps 16-bit mono/colour. The format string is ``"<encoding>; <fmt> compressed
    <stored encoding>"`` as image_transport writes it.
    """
    info = encoding_info(encoding)
    fmt = fmt.lower()
    if fmt in ('jpg', 'jpeg'):
        fmt, ext, params = 'jpeg', '.jpg', [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    elif fmt == 'png':
        ext, params = '.png', [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)]
    else:
        raise ImageEncodingError(f'unsupported compression format {fmt!r}; use jpeg or png')
    a = np.asarray(arr)
    if info.channels == 1 and info.kind in ('mono', 'generic') and (
            info.dtype == _U8 or fmt == 'png' and info.dtype == _U16):
        img, stored = a, ('mono8' if info.dtype == _U8 else 'mono16')
    elif fmt == 'png' and info.kind == 'color' and info.dtype == _U16:
        bgr = {'rgb': a[..., ::-1], 'bgr': a, 'rgba': a[..., [2, 1, 0, 3]], 'bgra': a}[info.order]
        img, stored = np.ascontiguousarray(bgr), ('bgr16' if info.channels == 3 else 'bgra16')
    else:
        img, stored = array_to_rgb8(a, encoding)[..., ::-1], 'bgr8'
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(img), params)
    if not ok:
        raise ImageEncodingError(f'OpenCV could not encode a {info.name} image as {fmt}')
    return CompressedFields(format=f'{info.name}; {fmt} compressed {stored}', data=buf.tobytes())
