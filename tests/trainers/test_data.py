"""Datasets: recursive listing, manifests and catalogues, clear errors, bad files skipped, fixed split,
augmentation that keeps masks on their images, batches of samples."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from trainers.data import (
    DataError,
    ImageDataset,
    Record,
    catalogue_records,
    center_crop,
    collate,
    list_images,
    read_manifest,
    records_from,
    split_roots,
    split_validation,
    to_tensor,
    to_uint8,
    write_manifest,
)


def test_lists_images_recursively_and_skips_hidden_and_other_files(photo_dir, make_photos):
    (photo_dir / "notes.txt").write_text("hello")
    (photo_dir / ".thumbs").mkdir()
    make_photos(photo_dir / ".thumbs", 2)
    files = list_images([photo_dir])
    assert len(files) == 8 and files == sorted(files)
    assert all(".thumbs" not in f.parts for f in files)


def test_clear_errors_for_missing_empty_and_file_arguments(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        list_images([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("x")
    with pytest.raises(DataError, match="no images"):
        list_images([tmp_path / "empty"])
    with pytest.raises(DataError, match="is a file"):
        list_images([tmp_path / "empty" / "readme.md"])
    with pytest.raises(DataError, match="no data folder"):
        list_images([])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_unreadable_folder_is_reported(tmp_path):  # pragma: no cover - depends on the user
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        with pytest.raises(DataError, match="cannot read"):
            list_images([locked])
    finally:
        locked.chmod(0o755)


def test_bad_images_are_skipped_with_a_warning(photo_dir):
    (photo_dir / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    (photo_dir / "empty.png").write_bytes(b"")
    files = list_images([photo_dir])
    ds = ImageDataset(files, 32, train=True)
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        items = [ds[i]["image"] for i in range(len(ds))]
    assert all(t.shape == (3, 32, 32) for t in items)


def test_all_bad_images_is_an_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"junk")
    ds = ImageDataset(list_images([tmp_path]), 16)
    with pytest.raises(DataError, match="could be read"), pytest.warns(UserWarning):
        ds[0]


def test_validation_split_is_fixed_by_name(tmp_path, make_photos):
    files = make_photos(tmp_path / "p", 40)
    train, val = split_validation(files, 0.25, [tmp_path / "p"])
    assert set(train).isdisjoint(val) and len(train) + len(val) == 40 and 3 <= len(val) <= 20
    more = make_photos(tmp_path / "p" / "new", 5, seed=3)
    train2, val2 = split_validation(sorted(files + more), 0.25, [tmp_path / "p"])
    assert set(val) <= set(val2) and set(train) <= set(train2)  # old files never move across
    assert split_validation(files[:2], 0.01, [tmp_path / "p"])[1]  # tiny folders still get one


def test_augmentation_crops_flips_and_is_seeded(photo_dir):
    files = list_images([photo_dir])
    ds = ImageDataset(files, 48, train=True, zoom=1.5, seed=1)  # images as small as 36 px get upscaled
    a, b = ds[2]["image"], ds[2]["image"]
    assert a.shape == (3, 48, 48) and torch.equal(a, b)
    assert a.min() >= -1.0 and a.max() <= 1.0
    ds.set_epoch(1)
    assert not torch.equal(ds[2]["image"], a)  # another epoch, another crop
    val = ImageDataset(files, 32, train=False)
    assert torch.equal(val[0]["image"], val[0]["image"])


def test_repeats_tiny_folders_to_fill_a_batch(photo_dir):
    ds = ImageDataset(list_images([photo_dir])[:2], 16, train=False, min_length=6)
    assert len(ds) == 6
    assert torch.equal(ds[4]["image"], ds[0]["image"]) and torch.equal(ds[5]["image"], ds[1]["image"])


def test_center_crop_and_tensor_round_trip():
    img = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    crop = center_crop(img, 30)
    assert crop.shape == (30, 30, 3) and np.array_equal(crop, img[:, 10:40])
    assert np.array_equal(to_uint8(to_tensor(crop)), crop)


def _pair(folder, name, size=(40, 56)):
    """A photo whose red channel is 255 exactly where its mask is 255 (the left third)."""
    h, w = size
    image = np.zeros((h, w, 3), np.uint8)
    image[:, : w // 3, 0] = 255
    image[..., 2] = np.arange(w, dtype=np.uint8)[None] * 4
    mask = np.where(image[..., 0] > 0, 255, 0).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(folder / f"{name}.png")
    Image.fromarray(mask).save(folder / f"{name}-mask.png")
    return folder / f"{name}.png", folder / f"{name}-mask.png"


def test_manifests_in_jsonl_and_csv_give_images_masks_and_captions(tmp_path):
    _pair(tmp_path / "img", "a")
    _pair(tmp_path / "img", "b")
    (tmp_path / "rows.jsonl").write_text(
        '{"image": "img/a.png", "mask": "img/a-mask.png", "caption": "a red mug"}\n\n{"image": "img/b.png"}\n'
    )
    (tmp_path / "rows.csv").write_text(
        "image,mask,caption\nimg/a.png,img/a-mask.png,a red mug\nimg/b.png,,\n"
    )
    for name in ("rows.jsonl", "rows.csv"):
        rows = read_manifest(tmp_path / name)
        assert rows == [
            Record(tmp_path / "img/a.png", tmp_path / "img/a-mask.png", "a red mug"),
            Record(tmp_path / "img/b.png"),
        ], name
    batch = collate([ImageDataset(rows, 32, train=False)[i] for i in (0, 1)])
    assert batch["image"].shape == (2, 3, 32, 32) and batch["mask"].shape == (2, 1, 32, 32)
    assert batch["mask_given"].tolist() == [True, False] and batch["mask"][1].sum() == 0
    assert batch["caption"] == ["a red mug", ""]
    assert "mask" not in collate([ImageDataset(rows[1:], 32)[0]])


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("m.jsonl", '{"image": "gone.png"}\n', "line 1: gone.png does not exist"),
        ("m.jsonl", '{"image": "x.png", "label": 3}\n', "unknown column"),
        ("m.jsonl", '{"image": "x.png"\n', "line 1: not valid JSON"),
        ("m.csv", "file\nx.png\n", "'image' column"),
        ("m.txt", "x.png\n", "jsonl"),
    ],
)
def test_manifest_errors_say_where(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(DataError, match=message):
        read_manifest(tmp_path / name)


def test_augmentation_crops_and_flips_the_mask_with_its_image(tmp_path):
    image, mask = _pair(tmp_path, "a")
    ds = ImageDataset([Record(image, mask)], 24, train=True, zoom=1.5, seed=0)
    flipped = 0
    for epoch in range(8):
        ds.set_epoch(epoch)
        sample = ds[0]
        assert torch.equal(sample["mask"][0] > 0.5, sample["image"][0] > 0)  # hole == red, pixel for pixel
        flipped += bool(sample["mask"][0, :, -1].any())
    assert 0 < flipped < 8  # some crops were flipped, some not


def test_a_mask_of_another_size_is_skipped(tmp_path):
    image, _ = _pair(tmp_path, "a")
    _, small = _pair(tmp_path, "small", size=(20, 20))
    ds = ImageDataset([Record(image, small), Record(image)], 16, train=False)
    with pytest.warns(UserWarning, match="skipping"):
        assert "mask" not in ds[0]  # the next row stood in


def test_catalogue_from_folders_or_a_csv(tmp_path):
    for product in ("Blue Mug", "Red Shoe"):
        _pair(tmp_path / "shop" / product / "side", "p")
    (tmp_path / "shop" / "empty").mkdir()
    rows = catalogue_records(tmp_path / "shop")
    assert sorted(r.caption for r in rows if r.mask is None) == [
        "Blue Mug",
        "Blue Mug",
        "Red Shoe",
        "Red Shoe",
    ]
    (tmp_path / "list.csv").write_text("file,name\nshop/Blue Mug/side/p.png,mug\n")
    assert catalogue_records(tmp_path / "list.csv") == [
        Record(tmp_path / "shop/Blue Mug/side/p.png", None, "mug")
    ]
    with pytest.raises(DataError, match="no product folders"):
        catalogue_records(tmp_path / "shop" / "empty")
    again = read_manifest(write_manifest(rows, tmp_path / "run" / "manifest.jsonl"))
    assert again == rows


def test_catalogue_rows_split_by_their_path_below_the_catalogue(tmp_path):
    for i in range(40):  # every product's photo is called p.png
        _pair(tmp_path / "shop" / f"product {i}", "p")
    rows = catalogue_records(tmp_path / "shop")
    train, val = split_validation(rows, 0.25, split_roots((), None, str(tmp_path / "shop")))
    photos = [r for r in val if r.image.name == "p.png"]
    assert 3 <= len(photos) <= 20 and len(train) + len(val) == len(rows)  # by name alone: none or all 40


def test_val_data_may_name_a_manifest(tmp_path):
    _pair(tmp_path, "a")
    (tmp_path / "val.jsonl").write_text('{"image": "a.png", "caption": "held out"}\n')
    assert records_from([str(tmp_path / "val.jsonl")], None, None) == [
        Record(tmp_path / "a.png", None, "held out")
    ]
    assert records_from([str(tmp_path)], None, None)[0] == Record(
        tmp_path / "a-mask.png"
    )  # a folder: its images
