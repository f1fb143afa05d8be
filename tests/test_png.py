"""PNG grids: upscaling by nearest neighbour and the label row (issue 18)."""
from __future__ import annotations

import numpy as np
import pytest

from lazysi.numeric.io.png import image_grid, label_row, upscale, with_label


def test_upscaled_grid_repeats_each_pixel():
    x = np.linspace(-1, 1, 2 * 1 * 3 * 3).reshape(2, 1, 3, 3)
    g1, g4 = image_grid(x, pad=0, scale=1), image_grid(x, pad=0, scale=4)
    assert g4.shape == (4 * g1.shape[0], 4 * g1.shape[1])
    assert np.array_equal(g4[::4, ::4], g1) and np.array_equal(upscale(g1, 4), g4)
    with pytest.raises(ValueError):
        upscale(g1, 0)


def test_label_row_draws_the_glyphs():
    row = label_row("1-", 20, scale=1)
    assert row.shape == (7, 20)
    glyph = (row[1:6, 1:4] == 0).astype(int)  # '1' from the 3x5 font: .X. / XX. / .X. / .X. / XXX
    assert glyph.tolist() == [[0, 1, 0], [1, 1, 0], [0, 1, 0], [0, 1, 0], [1, 1, 1]]
    assert (row[1:6, 5:8] == 0).astype(int).tolist() == [[0, 0, 0], [0, 0, 0], [1, 1, 1], [0, 0, 0], [0, 0, 0]]
    img = np.zeros((10, 20), np.uint8)
    assert with_label(img, "a").shape == (10 + 14, 20)
    with pytest.raises(ValueError, match="not in the font"):
        label_row("é", 10)
