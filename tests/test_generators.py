"""Generated kernels: their properties, and the built-ins that share a name with OpenCV agree with it."""

from __future__ import annotations

import math
import warnings

import cv2
import numpy as np
import pytest
from conftest import SAMPLES

from convfilter import KernelError, load_kernel
from convfilter.generators import GENERATORS
from convfilter.imageio import read_image
from convfilter.pipeline import filter_pixels

PHOTO = read_image(SAMPLES / "astronaut.png").pixels  # RGB
INTERIOR = (slice(20, -20), slice(20, -20))


def build(name: str, **params) -> np.ndarray:
    generator = GENERATORS[name]
    return generator.build(**generator.resolve(params, "test"))


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0, 3.7])
def test_gaussian_sums_to_one_and_is_symmetric(sigma):
    g = build("gaussian", sigma=sigma)
    assert g.shape == (2 * math.ceil(3 * sigma) + 1,) * 2
    assert abs(g.sum() - 1) < 1e-12
    np.testing.assert_allclose(g, g.T)
    np.testing.assert_allclose(g, g[::-1, ::-1])


def test_box_and_disk_follow_their_formulas():
    np.testing.assert_allclose(build("box", size=5), np.full((5, 5), 1 / 25))
    disk = build("disk", radius=2.5)
    y, x = np.mgrid[-3:4, -3:4]
    inside = x**2 + y**2 <= 2.5**2
    np.testing.assert_allclose(disk, inside / inside.sum())


@pytest.mark.parametrize("angle", [0, 30, 45, 90, 135, -60])
def test_motion_blur_lies_along_its_angle(angle):
    k = build("motion", length=15, angle=angle)
    assert abs(k.sum() - 1) < 1e-12
    # the principal axis of the weights (rows grow downwards, so y is flipped) is the angle
    c = (k.shape[0] - 1) / 2
    y, x = np.mgrid[0 : k.shape[0], 0 : k.shape[1]]
    dx, dy = x - c, c - y
    cov = np.array([[(k * dx * dx).sum(), (k * dx * dy).sum()], [(k * dx * dy).sum(), (k * dy * dy).sum()]])
    values, vectors = np.linalg.eigh(cov)
    axis = math.degrees(math.atan2(vectors[1, 1], vectors[0, 1])) % 180
    assert min(abs(axis - angle % 180), 180 - abs(axis - angle % 180)) < 1.0
    assert values[0] < 0.05 * values[1]  # a line, not a blob


def test_log_dog_and_unsharp_sums():
    log = build("laplacian_of_gaussian", sigma=2.0)
    assert abs(log.sum()) < 1e-12 and log[log.shape[0] // 2, log.shape[1] // 2] < 0
    np.testing.assert_allclose(log, log.T, atol=1e-15)
    assert abs(build("difference_of_gaussians", sigma1=1.0, sigma2=3.0).sum()) < 1e-12
    unsharp = build("unsharp", sigma=1.5, amount=0.7)
    centre = unsharp.shape[0] // 2
    assert abs(unsharp.sum() - 1) < 1e-12 and unsharp[centre, centre] > 1 and unsharp[0, 0] < 0


def test_gaussian_matches_opencv_gaussianblur():
    ours, _ = filter_pixels(PHOTO, load_kernel("gaussian", {"sigma": "2"}))
    theirs = cv2.GaussianBlur(PHOTO, (0, 0), 2)
    assert np.abs(ours[INTERIOR].astype(int) - theirs[INTERIOR]).max() <= 1


def test_box_matches_opencv_blur():
    ours, _ = filter_pixels(PHOTO, load_kernel("box", {"size": "5"}))
    theirs = cv2.blur(PHOTO, (5, 5))
    assert np.abs(ours[INTERIOR].astype(int) - theirs[INTERIOR]).max() <= 1


@pytest.mark.parametrize(("name", "derivative"), [("sobel", cv2.Sobel), ("scharr", cv2.Scharr)])
def test_gradient_magnitude_matches_opencv(name, derivative):
    ours, _ = filter_pixels(PHOTO, load_kernel(name))
    dx = derivative(PHOTO, cv2.CV_64F, 1, 0)
    dy = derivative(PHOTO, cv2.CV_64F, 0, 1)
    theirs = np.clip(np.rint(np.hypot(dx, dy)), 0, 255)
    assert np.abs(ours.astype(int) - theirs).max() <= 1


def test_sobel_x_is_opencv_dx_around_mid_grey():
    ours, _ = filter_pixels(PHOTO, load_kernel("sobel-x"))
    theirs = np.clip(np.rint(cv2.Sobel(PHOTO, cv2.CV_64F, 1, 0) + 128), 0, 255)
    assert np.abs(ours.astype(int) - theirs).max() <= 1


def test_sepia_and_swap_rb_mix_channels():
    pixel = np.array([[[200, 100, 50]]], np.uint8)
    sepia, _ = filter_pixels(pixel, load_kernel("sepia"))
    matrix = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])
    np.testing.assert_array_equal(sepia[0, 0], np.clip(np.rint(matrix @ [200, 100, 50]), 0, 255))
    swapped, _ = filter_pixels(pixel, load_kernel("swap-rb"))
    assert swapped[0, 0].tolist() == [50, 100, 200]


def test_kirsch_is_the_strongest_rotation():
    k = load_kernel("kirsch").weights
    north = k[0]
    ring = [(0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0)]
    for step in range(8):
        rotated = np.zeros((3, 3))
        for index, (i, j) in enumerate(ring):
            rotated[ring[(index - step) % 8]] = north[i, j]
        assert any(np.array_equal(rotated, m) for m in k), step
    assert load_kernel("kirsch").combine == "max"


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("gaussian", {"size": "4"}, r"parameter size must be odd, or 0 to choose from sigma, got 4"),
        ("gaussian", {"sigma": "0"}, r"parameter sigma must be > 0 and ≤ 42.3333, got 0.0"),
        ("disk", {"radius": "-2"}, r"parameter radius must be > 0 and ≤ 127, got -2.0"),
        ("motion-blur", {"length": "0"}, r"parameter length must be 1 to 254, got 0"),
        ("motion-blur", {"angle": "400"}, r"parameter angle must be in degrees, -360 to 360, got 400.0"),
        ("unsharp", {"amount": "-1"}, r"parameter amount must be 0 to 10, got -1.0"),
        (
            "dog",
            {"sigma3": "1"},
            r"takes no parameter 'sigma3'; it takes sigma1 \(> 0 and ≤ 42.3333, default 1\), sigma2",
        ),
    ],
)
def test_bad_parameters_list_what_is_accepted(name, params, message):
    with pytest.raises(KernelError, match=message):
        load_kernel(name, params)


@pytest.mark.parametrize(("text", "value"), [("2", 2.0), ("2.5", 2.5), (".5", 0.5), ("5.", 5.0), ("+1", 1.0),
                                             ("1e-1", 0.1), ("1E+1", 10.0)])  # fmt: skip
def test_parameters_on_the_command_line_are_plain_decimals(text, value):
    assert load_kernel("gaussian", {"sigma": text}).params[0] == ("sigma", value)


@pytest.mark.parametrize(
    "text",
    ["nan", "inf", "-inf", "Infinity", "1_0", "\u0661", "\uff13", "0x1", "", "1e", "e1", "--1", "1e400", "9" * 5000],
)
def test_parameters_that_are_not_plain_decimals_are_refused(text):
    # Python's float() takes most of these ("nan", "1_0", Arabic-Indic and full-width digits): -p does not
    with pytest.raises(KernelError, match=r"option -p: parameter sigma must be a number > 0 and ≤ 42.3333, got '"):
        load_kernel("gaussian", {"sigma": text})


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        (
            "gaussian",
            {"size": "1" + "0" * 400},
            r"size must be a number odd, .*, got '10{10}…0{11}' \(403 characters\)$",
        ),
        ("box", {"size": "1e300"}, r"parameter size must be 1 to 255, got an integer of about 300 digits$"),
        ("gaussian", {"sigma": "-0"}, r"parameter sigma must be > 0 and ≤ 42.3333, got -0.0$"),
        ("motion-blur", {"angle": "1e308"}, r"parameter angle must be in degrees, -360 to 360, got 1e\+308$"),
    ],
)
def test_extreme_parameters_get_a_short_line(name, params, message):
    with pytest.raises(KernelError, match=message):
        load_kernel(name, params)


@pytest.mark.parametrize(("name", "param"), [("gaussian", "sigma"), ("dog", "sigma1"), ("dog", "sigma2"),
                                             ("unsharp", "sigma"), ("log", "sigma")])  # fmt: skip
def test_a_vanishing_sigma_is_one_error_without_warnings(name, param):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a NumPy RuntimeWarning would be a second line on stderr
        with pytest.raises(KernelError, match=r"the weights must be finite numbers within float32's range"):
            load_kernel(name, {param: "1e-200"})


def test_unknown_parameter_names_of_any_type_are_listed_in_file_order():
    with pytest.raises(KernelError, match=r"generator gaussian takes no parameter 2; it takes sigma"):
        GENERATORS["gaussian"].resolve({"sigma": 1, 2: 3, None: 4}, "test")
