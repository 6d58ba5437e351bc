"""Image files and label maps: the one image reader, the one image resize and the one label-map
resize.

Files are read as bytes and decoded with `cv2.imdecode`, not with `cv2.imread`, which answers
every failure alike with None: here a missing file, one that cannot be read, an empty one and one
that is no image each get their own reason, and the file is opened by Python (so paths OpenCV
cannot open on some systems work too).
"""

import os
import stat
import struct

import cv2
import numpy as np

#: The largest image file read: an uncompressed 8K RGB frame is 100 MB.
MAX_IMAGE_BYTES = 256 << 20
#: The most pixels a frame may have unless told (an 8K frame has 33 million): a 390 KB PNG can
#: declare 20000 x 20000 pixels, 1.2 GB decoded, and a folder of them exhausts memory.
MAX_PIXELS = 50_000_000
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic), which hold the size.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_FILE_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device",
               stat.S_IFBLK: "a block device", stat.S_IFDIR: "a folder", stat.S_IFSOCK: "a socket"}
# Dtypes cv2.resize takes as they are; other integer maps go through int32.
_RESIZABLE = (np.uint8, np.int8, np.uint16, np.int16, np.int32)


class ImageError(ValueError):
    """An image file that cannot be used; `str(error)` is `PATH: reason`.

    Attributes:
        path: the file.
        reason: what is wrong with it, e.g. "empty file (0 bytes)".
    """

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def declared_size(data):
    """The (width, height) an image file's header declares, read without decoding it.

    OpenCV has no header-only reader (its own pixel limit is a process-wide environment variable,
    read once), so the sizes of the formats frames come in are read here: PNG (IHDR), JPEG (the
    start-of-frame segment) and BMP.

    Args:
        data: the file's bytes.

    Returns:
        (width, height), or None for another format or a header too short to say.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)  # a negative height stores the rows top-down
    if data[:2] == b"\xff\xd8":
        at = 2
        while at + 9 <= len(data) and data[at] == 0xFF:
            marker = data[at + 1]
            if marker == 0xFF:  # fill byte before a marker
                at += 1
                continue
            if marker == 0xD8 or 0xD0 <= marker <= 0xD7:  # markers without a length
                at += 2
                continue
            if marker in _JPEG_SOF:
                height, width = struct.unpack(">HH", data[at + 5:at + 9])
                return width, height
            at += 2 + struct.unpack(">H", data[at + 2:at + 4])[0]
    return None


def _pixel_limit_reason(width, height, max_pixels):
    """Why a frame of width x height is refused, or None within `max_pixels`."""
    if max_pixels is None or width * height <= max_pixels:
        return None
    return (f"{width} x {height} pixels ({width * height / 1e6:.3g} megapixels), above the limit "
            f"of {max_pixels / 1e6:g} megapixels")


def read_image(path, unchanged=False, max_pixels=MAX_PIXELS):
    """Reads an image file.

    Args:
        path: a file in a format OpenCV decodes (PNG, JPEG, ...).
        unchanged: False: the picture as uint8 RGB [H, W, 3], whatever is stored (OpenCV's
            IMREAD_COLOR: grey is repeated over the channels, 16 bits are shifted to 8, alpha is
            dropped). True: the pixels as stored, e.g. a label map's uint8 or uint16 [H, W].
        max_pixels: the most pixels (width x height) the image may have (None: no limit). A PNG,
            JPEG or BMP above it is refused before it is decoded (`declared_size`), another
            format after.

    Returns:
        the image array.

    Raises:
        ImageError: `PATH: reason`: "no such file", "not a regular file (a FIFO)" (also a
            device or a folder, or a link to one: nothing is read from it), "cannot read (OS
            reason)", "empty file (0 bytes)", larger than `MAX_IMAGE_BYTES`, more pixels than
            `max_pixels`, or "not a readable image".
    """
    try:
        kind = stat.S_IFMT(os.stat(path).st_mode)
        if kind != stat.S_IFREG:  # a FIFO would block the reader forever, /dev/zero fill memory
            raise ImageError(path, f"not a regular file ({_FILE_KINDS.get(kind, 'a special file')})")
        with open(path, "rb") as stream:
            data = stream.read(MAX_IMAGE_BYTES + 1)
    except FileNotFoundError:
        raise ImageError(path, "no such file") from None
    except OSError as error:
        raise ImageError(path, f"cannot read ({error.strerror or error})") from None
    if not data:
        raise ImageError(path, "empty file (0 bytes)")
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(path, f"larger than {MAX_IMAGE_BYTES >> 20} MB: no frame is")
    size = declared_size(data)
    if size is not None and (reason := _pixel_limit_reason(*size, max_pixels)):
        raise ImageError(path, reason)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8),
                             cv2.IMREAD_UNCHANGED if unchanged else cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise ImageError(path, "not a readable image")
    if reason := _pixel_limit_reason(image.shape[1], image.shape[0], max_pixels):
        raise ImageError(path, reason)
    return image if unchanged else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def resize_image(image, height, width):
    """A uint8 picture resized to height x width the one way training and serving both use.

    The converters store frames through it, the input pipeline resizes stored frames of another
    size through it (when not augmenting) and the predictor prepares every frame through it
    (`predictor.network_input`), so a frame reaches the network as the same pixels in training
    and in serving. Shrinking (no side grows) averages the source pixels (`cv2.INTER_AREA`: no
    aliasing of thin lane markings); otherwise it is bilinear (`cv2.INTER_LINEAR`), since area
    interpolation is nearest-neighbour-like when enlarging.

    Args:
        image: uint8 [h, w, C] or [h, w].
        height, width: the output size in pixels (>= 1).

    Returns:
        uint8 [height, width(, C)]; `image` itself when it already has that size.

    Raises:
        ValueError: an image that is not uint8, not 2-D or 3-D, or empty; a size below 1 x 1.
    """
    image = np.asarray(image)
    height, width = int(height), int(width)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(f"an image must be a non-empty uint8 [h, w(, C)] array, got "
                         f"{image.dtype} {image.shape}")
    if width < 1 or height < 1:
        raise ValueError(f"images resize to at least 1 x 1, got {width} x {height}")
    if image.shape[:2] == (height, width):
        return image
    shrinking = image.shape[0] >= height and image.shape[1] >= width
    return cv2.resize(image, (width, height),
                      interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def resize_labels(label_map, width, height):
    """A label map (class or instance ids) resized to width x height with nearest neighbour.

    Every output pixel takes the id of the input pixel under its centre (`cv2.INTER_NEAREST_EXACT`),
    so ids are never blended and a map scaled by any factor stays centred on the image
    (`cv2.INTER_NEAREST` rounds the source position down, which shifts the map towards the top
    left by up to one input pixel). Two maps of one size resized alike sample the same pixels.

    Args:
        label_map: bool or integer [h, w].
        width, height: the output size in pixels (>= 1).

    Returns:
        [height, width] array of `label_map`'s dtype; `label_map` itself when it has that size.

    Raises:
        ValueError: a map that is not 2-D, empty, of floats, or with ids beyond int32.
    """
    label_map = np.asarray(label_map)
    width, height = int(width), int(height)
    if label_map.ndim != 2 or label_map.size == 0:
        raise ValueError(f"a label map must be a non-empty [h, w] array, got {label_map.shape}")
    if width < 1 or height < 1:
        raise ValueError(f"label maps resize to at least 1 x 1, got {width} x {height}")
    if label_map.shape == (height, width):
        return label_map
    dtype = label_map.dtype
    if dtype == np.bool_:
        work = label_map.view(np.uint8)
    elif dtype in _RESIZABLE:
        work = label_map
    elif np.issubdtype(dtype, np.integer):
        limits = np.iinfo(np.int32)
        if label_map.min() < limits.min or label_map.max() > limits.max:
            raise ValueError(f"label ids {label_map.min()}..{label_map.max()} do not fit int32")
        work = label_map.astype(np.int32)
    else:
        raise ValueError(f"a label map holds integer ids, got {dtype}")
    resized = cv2.resize(work, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
    return resized.astype(dtype, copy=False)
