from pathlib import Path

import pytest

from index.retrieval.search import Searcher
from index.settings import Settings


def test_settings_come_from_a_dotenv_file(tmp_path, monkeypatch):
    monkeypatch.delenv("TOP_K", raising=False)
    env = tmp_path / ".env"
    env.write_text(
        "TOP_K=7\nDATA_DIR=/srv/verbatim\nALLOWED_CHANNEL_IDS=11, 22\nDISCORD_GUILD_ID=\n"
        "DISCORD_TOKEN=abc.def\nMULTILINGUAL_MODEL=none\n",
        encoding="utf-8",
    )
    settings = Settings(_env_file=env)
    assert settings.top_k == 7
    assert settings.index_dir == Path("/srv/verbatim/index")
    assert settings.allowed_channel_ids == [11, 22]
    assert settings.discord_guild_id is None
    assert settings.discord_token.get_secret_value() == "abc.def"
    assert "abc.def" not in repr(settings)


def test_environment_overrides_dotenv(tmp_path, monkeypatch):
    env = tmp_path / ".env"
    env.write_text("TOP_K=7\n", encoding="utf-8")
    monkeypatch.setenv("TOP_K", "3")
    assert Settings(_env_file=env).top_k == 3


def test_env_example_lists_every_setting():
    example = (Path(__file__).parents[2] / ".env.example").read_text(encoding="utf-8")
    names = {line.split("=", 1)[0].strip().lower() for line in example.splitlines()
             if "=" in line and not line.startswith("#")}
    assert names == set(Settings.model_fields)
    Settings(_env_file=Path(__file__).parents[2] / ".env.example")  # and its values are valid


@pytest.mark.parametrize("value", ["off", "OFF", "none", "None", "false", "False", "0", "no", "", "  off  "])
def test_reranker_off_means_no_reranker(value, monkeypatch, tmp_path, seed_engine, encoders):
    assert Settings(_env_file=None, reranker_model=value).reranker_model is None
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RERANKER_MODEL", value)
    assert Settings().reranker_model is None
    # Set past the validator (as tests and the bot's overrides do), it still means off when searching.
    settings = seed_engine.settings.model_copy(update={"reranker_model": value})
    assert Searcher(seed_engine.stored, encoders, settings).reranker is None


def test_a_reranker_name_is_kept():
    assert Settings(_env_file=None, reranker_model=" cross-encoder/ms-marco-MiniLM-L-6-v2 ").reranker_model == (
        "cross-encoder/ms-marco-MiniLM-L-6-v2"
    )
