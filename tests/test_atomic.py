"""Atomic files and folders: whole under their name, or not there at all."""

from __future__ import annotations

import pytest

from nrstream.atomic import atomic_file, atomic_folder


def test_file_appears_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert not target.exists() and list((tmp_path / "sub").iterdir()) == []
    with atomic_file(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole" and [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_folder_replaces_the_old_one_or_leaves_it_untouched(tmp_path):
    target = tmp_path / "run"
    with atomic_folder(target) as tmp:
        (tmp / "a").write_text("first")
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "b").write_text("second")
        raise RuntimeError("failed half-way")
    assert [p.name for p in target.iterdir()] == ["a"]
    with atomic_folder(target) as tmp:
        (tmp / "b").write_text("second")
    assert [p.name for p in target.iterdir()] == ["b"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temporary or old folders left
