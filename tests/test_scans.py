"""Notebook 09's synthetic scans (mmcourse.data.scans): what a drawn scan shows, measured from
its pixels against references worked out by hand, and the files ``plant_problems`` writes,
read against the PNG specification. The folder-level tests (captions, labels, planted rows
found by ``check-data``) are in test_owndata.py."""

import struct
import zlib

import numpy as np

from mmcourse.data import scans as scan_data


def test_a_scans_texture_is_noise_of_8_grey_levels_through_opencvs_3x3_gaussian():
    # The oval's texture: white Gaussian noise of standard deviation 8 grey levels on a flat
    # fill, blurred by OpenCV's 3 x 3 Gaussian with sigma 0, whose kernel is its fixed
    # [1, 2, 1] / 4 (not the 0.8 its formula gives), then rounded to integers. By hand: the
    # 2-D kernel is the outer product, so the blurred noise has standard deviation
    # 8 * (1/16 + 1/4 + 1/16) = 8 * 3/8 = 3, plus rounding's 1/12: sqrt(9 + 1/12) = 3.014;
    # neighbours along a row correlate by (1/4 * 1/2 + 1/2 * 1/4) / (3/8) = 2/3.
    # (sigma 1 would give 2.85 and 0.70; sigma 0.8 3.09 and 0.64; 20 scans: +-0.03.)
    import cv2

    assert cv2.getGaussianKernel(3, 0).ravel().tolist() == [0.25, 0.5, 0.25]
    yy, xx = np.mgrid[:96, :96] - 48
    inside = (xx / 24) ** 2 + (yy / 20) ** 2 <= 1  # well inside the oval (half-axes >= 27, 31)
    next_to = inside & np.roll(inside, 1, axis=1)
    deviations, products, squares = [], [], []
    for seed in range(20):
        scan = scan_data.draw_scan(None, np.random.default_rng(seed), 96).astype(float)
        deviation = scan - scan[inside].mean()  # the fill is one grey level per scan
        deviations.append(deviation[inside])
        products.append((deviation * np.roll(deviation, 1, axis=1))[next_to])
        squares.append(deviation[next_to] ** 2)
    std = np.concatenate(deviations).std()
    correlation = np.concatenate(products).mean() / np.concatenate(squares).mean()
    assert abs(std - np.sqrt(9 + 1 / 12)) < 0.07, std
    assert abs(correlation - 2 / 3) < 0.015, correlation


def test_a_scans_spot_sits_17_to_21_pixels_out_on_its_side_and_up_to_3_across():
    # At 96 pixels the spot's centre is 19 +- 2 pixels from the scan's centre towards its
    # place, and -3 to +3 pixels across that direction (on the other axis). Read from the
    # pixels: the centroid of the bright spot (230 on an oval of about 110) is its drawn
    # centre within a tenth of a pixel; over 40 scans every offset in those ranges is seen.
    along, across = set(), set()
    places = list(scan_data.SCAN_PLACES)
    for seed in range(40):
        place = places[seed % 4]
        dx, dy = {"left": (-1, 0), "right": (1, 0), "top": (0, -1), "bottom": (0, 1)}[place]
        finding = {"kind": "bright", "place": place, "size": "small"}
        scan = scan_data.draw_scan(finding, np.random.default_rng(seed), 96)
        ys, xs = np.nonzero(scan > 170)
        x, y = xs.mean() - 48, ys.mean() - 48
        out, side = x * dx + y * dy, x * abs(dy) + y * abs(dx)
        assert abs(out - round(out)) < 0.1 and abs(side - round(side)) < 0.1, (seed, x, y)
        along.add(round(out))
        across.add(round(side))
    assert along == set(range(17, 22)), along
    assert across == set(range(-3, 4)), across


def test_the_planted_huge_png_is_a_valid_png_header_of_40000_by_40000_pixels(tmp_path):
    # check-data must refuse it for its size, read from a header that is otherwise valid:
    # the PNG specification's signature, then an IHDR chunk of 13 bytes (width, height,
    # bit depth, colour type, compression, filter, interlace; compression and filter method
    # 0 are the only ones defined) and the CRC-32 of its type and data.
    folder = scan_data.write_scan_folder(tmp_path / "scans", count=3, seed=0)
    scan_data.plant_problems(folder)
    png = (folder / "images" / "huge.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">I", png[8:12])[0] == 13 and png[12:16] == b"IHDR"
    width, height, depth, colour, compression, filter_, interlace = struct.unpack(
        ">IIBBBBB", png[16:29])
    assert (width, height) == (40000, 40000)
    assert (depth, colour) == (8, 2)  # 8-bit RGB, a combination the specification allows
    assert (compression, filter_, interlace) == (0, 0, 0)
    assert png[29:33] == struct.pack(">I", zlib.crc32(png[12:29]))
    assert len(png) == 33
