"""``calib run`` keeps no known secret: what is not set is generated once into the data
folder, readable by its owner only, and the same on the next start."""

from __future__ import annotations

from calib_cli.stack import with_local_secrets
from calib_infra.config import DEV_S3_SECRET_KEY, Config


def test_unset_secrets_are_generated_once_and_kept(tmp_path):
    config = Config(data_dir=str(tmp_path / "data"))
    first = with_local_secrets(config)
    assert first.s3_secret_key != DEV_S3_SECRET_KEY and len(first.s3_secret_key) >= 32
    assert first.bootstrap_admin_token.startswith("calib_")
    for name in ("admin-token", "s3-secret-key"):
        assert (tmp_path / "data" / name).stat().st_mode & 0o777 == 0o600
    again = with_local_secrets(config)
    assert (again.s3_secret_key, again.bootstrap_admin_token) == (
        first.s3_secret_key,
        first.bootstrap_admin_token,
    )


def test_secrets_given_in_the_environment_are_used_as_they_are(tmp_path):
    config = Config(data_dir=str(tmp_path), s3_secret_key="mine", bootstrap_admin_token="tok")
    kept = with_local_secrets(config)
    assert (kept.s3_secret_key, kept.bootstrap_admin_token) == ("mine", "tok")
    assert not (tmp_path / "s3-secret-key").exists()
