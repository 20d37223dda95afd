from index.state import connect_state, state_path


def test_state_database_is_created_in_the_data_folder_and_shared_by_connections(tmp_path):
    data_dir = tmp_path / "var"
    first = connect_state(data_dir)
    first.execute("CREATE TABLE IF NOT EXISTS notes (text TEXT)")
    first.execute("INSERT INTO notes VALUES ('kept')")
    second = connect_state(data_dir)
    assert [row["text"] for row in second.execute("SELECT text FROM notes")] == ["kept"]
    assert state_path(data_dir).is_file()
    assert second.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
