"""Upload enumeration: layouts of zips and folders, and every rule that refuses a whole upload."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from headstart.kernels.engine.archive import SourceImage, list_images, open_upload
from headstart.kernels.engine.limits import IngestLimits
from headstart.kernels.errors import Invalid, TooLarge

LIMITS = IngestLimits()


def make_zip(path: Path, entries: dict[str, bytes], *, compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def make_folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def summary(images: list[SourceImage]) -> list[tuple[str, str, str | None]]:
    return [(image.path, image.label, image.split) for image in images]


def test_zip_label_layout_in_path_order(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "up.zip", {"dog/b.png": b"2", "cat/a.png": b"1", "dog/a.png": b"3"})
    assert summary(list_images(source, LIMITS)) == [
        ("cat/a.png", "cat", None),
        ("dog/a.png", "dog", None),
        ("dog/b.png", "dog", None),
    ]


def test_read_returns_entry_bytes(tmp_path: Path) -> None:
    source = make_zip(
        tmp_path / "up.zip", {"cat/a.png": b"meow", "dog/a.png": b"woof"}, compression=zipfile.ZIP_DEFLATED
    )
    with open_upload(source, LIMITS) as upload:
        assert [upload.read(image) for image in upload.images] == [b"meow", b"woof"]
        assert upload.labels == ["cat", "dog"]
        assert not upload.has_split_folders


def test_folder_read_returns_file_bytes(tmp_path: Path) -> None:
    source = make_folder(tmp_path / "up", {"cat/a.png": b"meow", "dog/a.png": b"woof"})
    with open_upload(source, LIMITS) as upload:
        assert [upload.read(image) for image in upload.images] == [b"meow", b"woof"]


def test_wrapper_folder_is_stripped(tmp_path: Path) -> None:
    source = make_zip(
        tmp_path / "up.zip", {"shapes/": b"", "shapes/circle/1.png": b"1", "shapes/square/1.png": b"2"}
    )
    assert summary(list_images(source, LIMITS)) == [
        ("shapes/circle/1.png", "circle", None),
        ("shapes/square/1.png", "square", None),
    ]


def test_split_folders(tmp_path: Path) -> None:
    source = make_folder(
        tmp_path / "up",
        {
            "data/train/cat/1.png": b"1",
            "data/train/dog/1.png": b"2",
            "data/Val/cat/2.png": b"3",
            "data/test/dog/2.png": b"4",
        },
    )
    with open_upload(source, LIMITS) as upload:
        assert upload.has_split_folders
        assert summary(upload.images) == [
            ("data/Val/cat/2.png", "cat", "val"),
            ("data/test/dog/2.png", "dog", "test"),
            ("data/train/cat/1.png", "cat", "train"),
            ("data/train/dog/1.png", "dog", "train"),
        ]


def test_hidden_files_and_macos_metadata_are_ignored(tmp_path: Path) -> None:
    source = make_zip(
        tmp_path / "up.zip",
        {
            "cat/1.png": b"1",
            "dog/1.png": b"2",
            "cat/.DS_Store": b"x",
            ".hidden/cat/1.png": b"x",
            "__MACOSX/cat/._1.png": b"x",
            ".gitignore": b"x",
        },
    )
    assert [image.path for image in list_images(source, LIMITS)] == ["cat/1.png", "dog/1.png"]


def test_hidden_folder_entries_are_ignored(tmp_path: Path) -> None:
    source = make_folder(tmp_path / "up", {"cat/1.png": b"1", "dog/1.png": b"2", ".git/config": b"x"})
    assert len(list_images(source, LIMITS)) == 2


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../evil.png", r"outside the archive"),
        ("cat/../../evil.png", r"outside the archive"),
        ("cat\\..\\..\\evil.png", r"outside the archive"),
        ("/etc/evil.png", r"absolute path"),
        ("C:/evil.png", r"absolute path"),
    ],
)
def test_zip_escaping_paths_refuse_the_upload(tmp_path: Path, name: str, message: str) -> None:
    source = make_zip(tmp_path / "up.zip", {"cat/1.png": b"1", "dog/1.png": b"2", name: b"evil"})
    with pytest.raises(Invalid, match=message) as caught:
        list_images(source, LIMITS)
    assert "evil.png" in str(caught.value)


def test_zip_symlink_refuses_the_upload(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "up.zip", {"cat/1.png": b"1", "dog/1.png": b"2"})
    link = zipfile.ZipInfo("cat/passwd.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(Invalid, match=r"'cat/passwd.png' is a symbolic link"):
        list_images(path, LIMITS)


@pytest.mark.parametrize("target", ["file", "folder"])
def test_folder_symlink_refuses_the_upload(tmp_path: Path, target: str) -> None:
    source = make_folder(tmp_path / "up", {"cat/1.png": b"1", "dog/1.png": b"2"})
    outside = make_folder(tmp_path / "outside", {"secret.png": b"s"})
    if target == "file":
        (source / "cat" / "link.png").symlink_to(outside / "secret.png")
        name = "cat/link.png"
    else:
        (source / "bird").symlink_to(outside, target_is_directory=True)
        name = "bird"
    with pytest.raises(Invalid, match=f"'{name}' is a symbolic link"):
        list_images(source, LIMITS)


def test_archive_over_byte_limit(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "up.zip", {"cat/1.png": b"1" * 600, "dog/1.png": b"2" * 600})
    with pytest.raises(TooLarge, match="over the limit of 1,000"):
        list_images(source, IngestLimits(max_archive_bytes=1_000))


def test_folder_over_byte_limit(tmp_path: Path) -> None:
    source = make_folder(tmp_path / "up", {"cat/1.png": b"1" * 600, "dog/1.png": b"2" * 600})
    with pytest.raises(TooLarge, match="1,000 bytes"):
        list_images(source, IngestLimits(max_archive_bytes=1_000))


@pytest.mark.parametrize("kind", ["zip", "folder"])
def test_too_many_files(tmp_path: Path, kind: str) -> None:
    files = {f"{label}/{n}.png": b"x" for label in ("cat", "dog") for n in range(3)}
    source = make_zip(tmp_path / "up.zip", files) if kind == "zip" else make_folder(tmp_path / "up", files)
    with pytest.raises(TooLarge, match=r"limit of 5|more than 5"):
        list_images(source, IngestLimits(max_files=5))
    assert len(list_images(source, IngestLimits(max_files=6))) == 6


def test_zip_bomb_compression_ratio(tmp_path: Path) -> None:
    source = make_zip(
        tmp_path / "up.zip",
        {"cat/1.png": b"\0" * 2_000_000, "dog/1.png": b"x"},
        compression=zipfile.ZIP_DEFLATED,
    )
    with pytest.raises(TooLarge, match="compression ratio limit of 200x"):
        list_images(source, LIMITS)


def test_single_entry_over_image_byte_limit(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "up.zip", {"cat/1.png": b"x" * 5_000, "dog/1.png": b"x"})
    with pytest.raises(TooLarge, match=r"'cat/1.png' is 5,000 bytes, over the per-file limit of 4,096"):
        list_images(source, IngestLimits(max_image_bytes=4_096))


def test_files_at_top_level_are_refused(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "up.zip", {"cat/1.png": b"1", "dog/1.png": b"2", "stray.png": b"3"})
    with pytest.raises(Invalid, match="outside label folders") as caught:
        list_images(source, LIMITS)
    assert caught.value.detail == ["stray.png"]


def test_mixing_split_and_label_folders_is_refused(tmp_path: Path) -> None:
    source = make_folder(
        tmp_path / "up", {"train/cat/1.png": b"1", "train/dog/1.png": b"1", "dog/2.png": b"2"}
    )
    with pytest.raises(Invalid, match=r"mixes split folders \(train\) with label folders \(dog\)"):
        list_images(source, LIMITS)


def test_files_directly_in_a_split_folder_are_refused(tmp_path: Path) -> None:
    source = make_folder(
        tmp_path / "up", {"train/cat/1.png": b"1", "train/dog/1.png": b"1", "val/2.png": b"2"}
    )
    with pytest.raises(Invalid, match="directly in a split folder"):
        list_images(source, LIMITS)


@pytest.mark.parametrize(
    ("files", "found"),
    [
        ({"cat/1.png": b"1", "cat/2.png": b"2"}, "only 'cat'"),
        ({}, "none"),
        ({"w/cat/1.png": b"1"}, "only 'cat'"),
    ],
)
def test_fewer_than_two_labels_is_refused(tmp_path: Path, files: dict[str, bytes], found: str) -> None:
    source = make_zip(tmp_path / "up.zip", files)
    with pytest.raises(Invalid, match=f"at least 2 label folders.*{found}"):
        list_images(source, LIMITS)


def test_not_a_zip_is_invalid(tmp_path: Path) -> None:
    source = tmp_path / "up.zip"
    source.write_text("not a zip")
    with pytest.raises(Invalid, match="not a readable zip"):
        list_images(source, LIMITS)


def test_missing_upload_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="not found"):
        list_images(tmp_path / "nothing", LIMITS)
