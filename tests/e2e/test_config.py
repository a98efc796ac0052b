"""`odradek serve` configuration: Kafka's broker config names from a
properties file (--config), from --override name=value (as
kafka-server-start.sh takes them, and winning over the file), and from
ODRADEK_<NAME IN UPPER SNAKE CASE> environment variables. Unknown names and
bad values stop start-up with a message that names them.
"""

import os
import subprocess
import time

import pytest

import clients
from conftest import broker_binary, free_port


def run_expecting_exit(tmp_path, *overrides, env=None):
    cmd = [broker_binary(), "serve",
           "--override", f"listeners=PLAINTEXT://127.0.0.1:{free_port()}",
           "--override", f"log.dirs={tmp_path / 'data'}"]
    for o in overrides:
        cmd += ["--override", o]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ODRADEK_")}
    full_env.update(env or {})
    full_env["NO_COLOR"] = "1"
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=15, cwd=tmp_path, env=full_env,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:  # run() has killed it
        raise AssertionError(f"broker kept running with {overrides}:\n"
                             f"{(e.stderr or b'').decode(errors='replace')[-2000:]}")
    return r.returncode, r.stderr.decode(errors="replace")


@pytest.mark.parametrize("override,named", [
    ("no.such.config=1", "no.such.config"),
    ("num.partitions=abc", "num.partitions"),
    ("num.partitions=0", "num.partitions"),
    ("auto.create.topics.enable=maybe", "auto.create.topics.enable"),
    ("listeners=PLAINTEXT://nonsense", "listeners"),
])
def test_bad_config_stops_startup(tmp_path, override, named):
    code, err = run_expecting_exit(tmp_path, override)
    assert code != 0, f"started despite {override}"
    assert named in err, f"the message should name {named!r}:\n{err}"


def _auto_create_partitions(broker, topic):
    clients.produce(broker, topic, [dict(value=b"v")])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        parts = clients.topic_partitions(broker, topic)
        if parts:
            return len(parts)
        time.sleep(0.1)
    return None


def test_properties_file_and_override_precedence(start_broker, tmp_path):
    props = tmp_path / "server.properties"
    props.write_text("# Kafka-style properties\n\n"
                     "num.partitions=3\n"
                     "auto.create.topics.enable = true\n"
                     "log.retention.ms=604800000\n")
    broker = start_broker(args=["--config", str(props)])
    assert _auto_create_partitions(broker, "from-file") == 3
    broker.stop()
    # --override beats the file, as with kafka-server-start.sh.
    broker.overrides["num.partitions"] = "2"
    broker.start()
    assert _auto_create_partitions(broker, "from-override") == 2


def test_environment_variable(start_broker):
    broker = start_broker(env={"ODRADEK_NUM_PARTITIONS": "5"})
    assert _auto_create_partitions(broker, "from-env") == 5


def test_default_data_dir_is_odradek_data_in_cwd(start_broker):
    broker = start_broker(set_log_dirs=False)
    clients.create_topic(broker, "where")
    clients.produce(broker, "where", [dict(value=b"v")])
    assert (broker.workdir / "odradek-data" / "where-0").is_dir(), \
        sorted(p.name for p in broker.workdir.iterdir())
