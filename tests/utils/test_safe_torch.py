"""Weights-only loads of outside checkpoints: a pickle that runs code is refused by name unless trusted."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from samqa_framework.utils.errors import TRUST_KEY, DataFormatError, UntrustedFileError
from samqa_framework.utils.safe_torch import check_torch_file, load_torch_file, unsafe_globals
from samqa_framework.utils.trust import trusted, trusting
from tests.utils.helpers_untrusted import WritesMarker, write_malicious_checkpoint


def test_plain_weights_load(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": {"a": torch.ones(2)}, "epoch": 3, "hyper_parameters": {"lr": 0.1}}, path)
    loaded = load_torch_file(path)
    assert torch.equal(loaded["state_dict"]["a"], torch.ones(2)) and loaded["epoch"] == 3
    assert unsafe_globals(path) == [] and check_torch_file(path) is True


@pytest.mark.parametrize("zip_format", [True, False])
def test_a_pickle_that_runs_code_is_refused_by_name(tmp_path: Path, zip_format: bool) -> None:
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"a": torch.ones(2)}, "x": WritesMarker(marker)}, path,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(UntrustedFileError) as err:
        load_torch_file(path)
    message = str(err.value)
    assert err.value.path == str(path) and f"{TRUST_KEY}=true" in message and "exec" in message
    assert isinstance(err.value, DataFormatError)  # a file's error: reported as it is, wherever the loader sits
    assert not marker.exists()


def test_check_refuses_before_a_library_loads_the_file(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    path = write_malicious_checkpoint(tmp_path / "evil.ckpt", marker)
    assert unsafe_globals(path) == ["builtins.exec"]
    with pytest.raises(UntrustedFileError, match=rf"evil\.ckpt: .*builtins\.exec.*{TRUST_KEY}=true"):
        check_torch_file(path)
    assert not marker.exists()


def test_trusted_the_file_is_unpickled_in_full_with_a_warning(tmp_path: Path,
                                                               trust_log: pytest.LogCaptureFixture) -> None:
    marker = tmp_path / "MARKER"
    path = write_malicious_checkpoint(tmp_path / "evil.ckpt", marker)
    assert not trusted()
    with trusting(True):
        assert trusted()
        assert torch.equal(load_torch_file(path)["weight"], torch.zeros(2))
        assert check_torch_file(path) is False  # Lightning is then told weights_only=False
    assert not trusted()
    assert marker.exists()  # what trusting means: the file's code ran
    assert f"{TRUST_KEY}=true" in trust_log.text and "evil.ckpt" in trust_log.text


def test_an_unreadable_file_is_a_data_format_error(tmp_path: Path) -> None:
    path = tmp_path / "truncated.pt"
    torch.save({"a": torch.ones(100)}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataFormatError, match=r"truncated\.pt: cannot read as a PyTorch checkpoint"):
        load_torch_file(path)

