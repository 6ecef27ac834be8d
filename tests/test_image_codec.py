"""image_codec: sensor_msgs/Image <-> numpy for every encoding, padding, byte order, compression."""
import struct
from types import SimpleNamespace

import numpy as np
import pytest

from dexman_common.image_codec import (
    SUPPORTED_ENCODINGS, ImageEncodingError, ImageFields, array_to_rgb8, decode_compressed,
    decode_compressed_rgb8, encode_compressed, encoding_info, image_to_numpy, numpy_to_image,
    to_bgr8, to_rgb8)

H, W = 5, 7
RNG = np.random.default_rng(1234)


def _random(dtype, shape):
    dt = np.dtype(dtype)
    if dt.kind == 'f':
        return RNG.normal(0.0, 100.0, size=shape).astype(dt)
    info = np.iinfo(dt)
    return RNG.integers(info.min, info.max, size=shape, endpoint=True, dtype=dt)


def _shape(encoding):
    info = encoding_info(encoding)
    return (H, W) if info.channels == 1 else (H, W, info.channels)


@pytest.mark.parametrize('encoding', SUPPORTED_ENCODINGS)
@pytest.mark.parametrize('bigendian', [False, True])
@pytest.mark.parametrize('pad', [0, 3])
def test_round_trip_every_encoding(encoding, bigendian, pad):
    info = encoding_info(encoding)
    arr = _random(info.dtype, _shape(encoding))
    row = W * info.channels * info.dtype.itemsize
    fields = numpy_to_image(arr, encoding, bigendian=bigendian, step=row + pad)
    assert (fields.height, fields.width, fields.step) == (H, W, row + pad)
    assert fields.is_bigendian == int(bigendian)
    assert len(fields.data) == (row + pad) * H
    back = image_to_numpy(fields)
    assert back.shape == arr.shape
    assert back.dtype == info.dtype and back.dtype.isnative
    np.testing.assert_array_equal(back, arr)


def test_layout_of_known_encodings():
    assert encoding_info('rgb8').channels == 3 and encoding_info('rgb8').dtype == np.uint8
    assert encoding_info('bgra16').channels == 4 and encoding_info('bgra16').dtype == np.uint16
    assert encoding_info('32FC1').dtype == np.float32
    assert encoding_info('16SC1').dtype == np.int16
    assert encoding_info('64FC1').dtype == np.float64
    assert encoding_info('8UC4').channels == 4
    assert encoding_info('yuv422').channels == 2 and encoding_info('uyvy').order == 'uyvy'
    assert encoding_info('bayer_rggb16').dtype == np.uint16


def test_padded_step_message_by_hand():
    # 3x2 mono8 with step 8: 5 bytes of padding per row, filled with junk that must be ignored
    data = bytes([1, 2, 3, 99, 99, 99, 99, 99, 4, 5, 6, 77, 77, 77, 77, 77])
    msg = SimpleNamespace(height=2, width=3, encoding='mono8', is_bigendian=0, step=8, data=data)
    np.testing.assert_array_equal(image_to_numpy(msg), [[1, 2, 3], [4, 5, 6]])
    # last row without its padding (some drivers send step * (h - 1) + row bytes)
    msg.data = data[:8 + 3]
    np.testing.assert_array_equal(image_to_numpy(msg), [[1, 2, 3], [4, 5, 6]])


def test_padded_rgb8_with_odd_step():
    rgb = _random(np.uint8, (4, 5, 3))
    fields = numpy_to_image(rgb, 'rgb8', step=17)      # 15 bytes per row + 2 padding
    assert fields.step == 17 and len(fields.data) == 68
    np.testing.assert_array_equal(image_to_numpy(fields), rgb)


def test_bigendian_mono16_by_hand():
    values = [[1, 258, 65535], [4096, 0, 513]]
    data = b''.join(struct.pack('>H', v) for row in values for v in row)
    msg = SimpleNamespace(height=2, width=3, encoding='mono16', is_bigendian=1, step=6, data=data)
    arr = image_to_numpy(msg)
    assert arr.dtype == np.uint16 and arr.dtype.isnative
    np.testing.assert_array_equal(arr, values)
    msg.is_bigendian = 0                      # the same bytes read little-endian are swapped
    assert int(image_to_numpy(msg)[0, 1]) == 0x0201


def test_bigendian_32fc1_with_padding():
    depth = np.array([[0.5, 1.25], [np.nan, 3.0]], dtype=np.float32)
    rows = [struct.pack('>ff', *r) + b'\0\0\0\0' for r in depth.tolist()]
    msg = SimpleNamespace(height=2, width=2, encoding='32FC1', is_bigendian=1, step=12,
                          data=b''.join(rows))
    np.testing.assert_array_equal(image_to_numpy(msg), depth)


def test_unknown_encoding_names_it_and_the_supported_list():
    msg = SimpleNamespace(height=1, width=1, encoding='rgb565', is_bigendian=0, step=2,
                          data=b'\0\0')
    with pytest.raises(ImageEncodingError) as err:
        image_to_numpy(msg)
    text = str(err.value)
    assert "'rgb565'" in text
    for name in ('rgb8', 'bgr8', 'mono16', '32FC1', 'yuv422', 'bayer_rggb8'):
        assert name in text or name.replace('32FC1', '32F') in text
    with pytest.raises(ImageEncodingError, match='rgb565'):
        numpy_to_image(np.zeros((1, 1), np.uint8), 'rgb565')


def test_inconsistent_sizes_are_errors():
    with pytest.raises(ImageEncodingError, match='step 5 is smaller than a row'):
        image_to_numpy(SimpleNamespace(height=2, width=2, encoding='rgb8', is_bigendian=0,
                                       step=5, data=bytes(12)))
    with pytest.raises(ImageEncodingError, match='needs 12 bytes of data, got 7'):
        image_to_numpy(SimpleNamespace(height=2, width=2, encoding='rgb8', is_bigendian=0,
                                       step=6, data=bytes(7)))
    with pytest.raises(ImageEncodingError, match='expected uint16'):
        numpy_to_image(np.zeros((2, 2), np.uint8), 'mono16')
    with pytest.raises(ImageEncodingError, match=r'expected \(H, W, 3\)'):
        numpy_to_image(np.zeros((2, 2, 4), np.uint8), 'rgb8')


def test_rclpy_and_rosbags_messages():
    """The same code reads real rclpy messages (array.array data) and rosbags messages."""
    sensor_msgs = pytest.importorskip('sensor_msgs.msg')
    rgb = _random(np.uint8, (6, 4, 3))
    fields = numpy_to_image(rgb, 'bgr8', step=14)
    ros_msg = fields.apply_to(sensor_msgs.Image())
    assert ros_msg.step == 14 and len(ros_msg.data) == 84
    np.testing.assert_array_equal(image_to_numpy(ros_msg), rgb)
    np.testing.assert_array_equal(to_rgb8(ros_msg), rgb[..., ::-1])

    from dexman_common.bag_reader import make_typestore
    ts = make_typestore()
    T = ts.types
    header = T['std_msgs/msg/Header'](stamp=T['builtin_interfaces/msg/Time'](sec=1, nanosec=2),
                                      frame_id='camera_optical')
    bag_msg = T['sensor_msgs/msg/Image'](header=header, **fields.as_kwargs(numpy_data=True))
    again = ts.deserialize_cdr(ts.serialize_cdr(bag_msg, 'sensor_msgs/msg/Image'),
                               'sensor_msgs/msg/Image')
    np.testing.assert_array_equal(image_to_numpy(again), rgb)


def test_to_rgb8_colour_orders():
    rgb = _random(np.uint8, (H, W, 3))
    alpha = np.full((H, W, 1), 7, np.uint8)
    cases = {'rgb8': rgb, 'bgr8': rgb[..., ::-1], 'rgba8': np.concatenate([rgb, alpha], 2),
             'bgra8': np.concatenate([rgb[..., ::-1], alpha], 2), '8UC3': rgb}
    for enc, arr in cases.items():
        out = to_rgb8(numpy_to_image(np.ascontiguousarray(arr), enc))
        assert out.dtype == np.uint8 and out.shape == (H, W, 3)
        np.testing.assert_array_equal(out, rgb, err_msg=enc)
    rgb16 = (rgb.astype(np.uint16) << 8) | 3           # top byte is the 8-bit value
    np.testing.assert_array_equal(to_rgb8(numpy_to_image(rgb16, 'rgb16')), rgb)
    np.testing.assert_array_equal(to_rgb8(numpy_to_image(rgb16[..., ::-1].copy(), 'bgr16')), rgb)
    np.testing.assert_array_equal(to_bgr8(numpy_to_image(rgb, 'rgb8')), rgb[..., ::-1])


def test_to_rgb8_mono_and_depth():
    g = np.array([[0, 128], [255, 17]], np.uint8)
    out = to_rgb8(numpy_to_image(g, 'mono8'))
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[..., 0], g)
    np.testing.assert_array_equal(out[..., 2], g)
    mono16 = numpy_to_image(g.astype(np.uint16) << 8, 'mono16')
    np.testing.assert_array_equal(to_rgb8(mono16)[..., 1], g)
    depth_mm = np.array([[1000, 2000], [3000, 0]], np.uint16)   # 16UC1: min-max scaled
    np.testing.assert_array_equal(to_rgb8(numpy_to_image(depth_mm, '16UC1'))[..., 0],
                                  [[85, 170], [255, 0]])
    depth_m = np.array([[1.0, 2.0], [np.nan, np.inf]], np.float32)
    out = array_to_rgb8(depth_m, '32FC1', value_range=(0.0, 4.0))
    np.testing.assert_array_equal(out[..., 0], [[64, 128], [0, 0]])


@pytest.mark.parametrize('pattern, origin', [('rggb', 0), ('bggr', 2), ('gbrg', 1), ('grbg', 1)])
def test_bayer_pattern_pure_colours(pattern, origin):
    """A mosaic of a uniform red image demosaics to red with the pattern named in the encoding."""
    h = w = 8
    for colour in range(3):                  # pure R, then G, then B
        mosaic = np.zeros((h, w), np.uint8)
        letters = np.array(list(pattern)).reshape(2, 2)
        for dy in range(2):
            for dx in range(2):
                if 'rgb'[colour] == letters[dy, dx]:
                    mosaic[dy::2, dx::2] = 200
        out = to_rgb8(numpy_to_image(mosaic, f'bayer_{pattern}8'))
        centre = out[2:6, 2:6].reshape(-1, 3).mean(axis=0)
        assert centre[colour] > 150, (pattern, colour, centre)
        others = [c for c in range(3) if c != colour]
        assert centre[others].max() < 60, (pattern, colour, centre)
    out16 = to_rgb8(numpy_to_image(mosaic.astype(np.uint16) * 256, f'bayer_{pattern}16'))
    assert out16[2:6, 2:6, 2].mean() > 150          # the last colour was blue


def test_yuv422_uyvy_and_yuyv():
    """Packed 4:2:2 as cameras send it: BT.601 video range (Y 16..235), U/V shared by 2 px."""
    rgb = np.zeros((2, 4, 3), np.uint8)
    rgb[:] = (200, 40, 40)                            # red: V (Cr) high, U (Cb) low
    r, g, b = (rgb[..., i] / 255.0 for i in range(3))
    y = np.rint(16 + 65.481 * r + 128.553 * g + 24.966 * b).astype(np.uint8)
    u = np.rint(128 - 37.797 * r - 74.203 * g + 112.0 * b).astype(np.uint8)
    v = np.rint(128 + 112.0 * r - 93.786 * g - 18.214 * b).astype(np.uint8)
    assert int(v[0, 0]) > 180 and int(u[0, 0]) < 110    # swapping U and V would turn it blue
    uyvy = np.zeros((2, 4, 2), np.uint8)
    uyvy[:, 0::2, 0], uyvy[:, 1::2, 0] = u[:, 0::2], v[:, 0::2]
    uyvy[:, :, 1] = y
    yuyv = np.zeros((2, 4, 2), np.uint8)
    yuyv[:, :, 0] = y
    yuyv[:, 0::2, 1], yuyv[:, 1::2, 1] = u[:, 0::2], v[:, 0::2]
    for enc, arr in (('yuv422', uyvy), ('uyvy', uyvy), ('yuv422_yuy2', yuyv), ('yuyv', yuyv)):
        out = to_rgb8(numpy_to_image(arr, enc)).astype(int)
        assert np.abs(out - rgb.astype(int)).max() <= 3, (enc, out[0, 0])


def test_compressed_jpeg_and_png_round_trip():
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[:, :16] = (255, 0, 0)
    rgb[:, 16:32] = (0, 255, 0)
    rgb[:, 32:] = (0, 0, 255)
    jpg = encode_compressed(rgb, 'rgb8', 'jpeg', jpeg_quality=95)
    assert jpg.format == 'rgb8; jpeg compressed bgr8'
    assert jpg.data[:2] == b'\xff\xd8'
    out = decode_compressed_rgb8(jpg.data, jpg.format)
    assert out.shape == rgb.shape
    assert np.abs(out[4:-4, 4:12].astype(int) - (255, 0, 0)).max() < 30     # still red on the left
    assert np.abs(out[4:-4, 36:44].astype(int) - (0, 0, 255)).max() < 30    # blue on the right
    png = encode_compressed(rgb, 'rgb8', 'png')
    np.testing.assert_array_equal(decode_compressed_rgb8(png.data), rgb)     # lossless
    msg = SimpleNamespace(format=png.format, data=np.frombuffer(png.data, np.uint8))
    np.testing.assert_array_equal(to_rgb8(msg), rgb)


def test_compressed_png_keeps_16_bit():
    depth = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    png = encode_compressed(depth, '16UC1', 'png')
    assert png.format == '16UC1; png compressed mono16'
    arr, enc = decode_compressed(png.data)
    assert enc == 'mono16' and arr.dtype == np.uint16
    np.testing.assert_array_equal(arr, depth)
    grey = encode_compressed(depth.astype(np.uint8), 'mono8', 'jpeg')
    assert decode_compressed(grey.data)[1] == 'mono8'


def test_compressed_errors():
    with pytest.raises(ImageEncodingError, match='could not decode CompressedImage data'):
        decode_compressed_rgb8(b'not a jpeg at all', 'jpeg')
    with pytest.raises(ImageEncodingError, match='could not decode'):
        decode_compressed_rgb8(b'', 'jpeg')
    with pytest.raises(ImageEncodingError, match='compressedDepth'):
        decode_compressed_rgb8(b'\0' * 20, '16UC1; compressedDepth png')
    with pytest.raises(ImageEncodingError, match="unsupported compression format 'webm'"):
        encode_compressed(np.zeros((2, 2, 3), np.uint8), 'rgb8', 'webm')


def test_image_fields_kwargs():
    f = ImageFields(height=1, width=2, encoding='mono8', is_bigendian=0, step=2, data=b'\x01\x02')
    kw = f.as_kwargs(numpy_data=True)
    assert isinstance(kw['data'], np.ndarray) and kw['data'].tolist() == [1, 2]
    assert f.as_kwargs()['data'] == b'\x01\x02'
