"""Apache Kafka in KRaft mode, single node, as a local JVM process.

The broker's jars come from (first match): ``KAFKA_HOME`` (an unpacked Apache distribution), a
user cache resolved by Maven from ``deploy/local/kafka/pom.xml``, or the official Apache tarball
verified against its published SHA-512 (needs an internet connection).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import subprocess
import tarfile
import urllib.request
import uuid
from pathlib import Path

from tmstream.ground.exceptions import StackError
from tmstream.ground.resources import packaged
from tmstream.ground.settings import Settings
from tmstream.stack.process import ServiceProcess, port_is_free

POM = packaged("kafka") / "pom.xml"  # deploy/local/kafka/pom.xml in the source tree
ARCHIVE_URL = "https://archive.apache.org/dist/kafka/{v}/kafka_2.13-{v}.tgz"
LOG4J = """log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
"""
LOG4J2 = """status=warn
appender.console.type=Console
appender.console.name=STDOUT
appender.console.layout.type=PatternLayout
appender.console.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=INFO
rootLogger.appenderRef.stdout.ref=STDOUT
"""


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tmstream" / "kafka"


def resolve_jars(version: str, *, offline_ok: bool = True) -> Path:
    """A folder of jars holding ``kafka.Kafka`` for ``version`` (downloaded once, then reused)."""
    home = os.environ.get("KAFKA_HOME")
    if home:
        libs = Path(home) / "libs"
        if not any(libs.glob("kafka_2.13-*.jar")):
            raise StackError(f"KAFKA_HOME={home} has no libs/kafka_2.13-*.jar")
        return libs
    libs = cache_root() / version / "libs"
    if any(libs.glob("kafka_2.13-*.jar")):
        return libs
    if shutil.which("mvn"):
        return _resolve_with_maven(version, libs)
    try:
        return _resolve_from_apache(version, libs)
    except OSError as exc:
        raise StackError(
            f"cannot obtain Kafka {version}: no Maven (apt-get install maven) and the Apache "
            f"download failed ({exc}); or set KAFKA_HOME to an unpacked Kafka or "
            "TMSTREAM_KAFKA_BOOTSTRAP to an external broker"
        ) from exc


def _resolve_with_maven(version: str, libs: Path) -> Path:
    staging = libs.with_name("libs.partial")
    shutil.rmtree(staging, ignore_errors=True)
    profile = "kafka4" if int(version.split(".")[0]) >= 4 else "kafka3"
    command = [
        "mvn", "-q", "-B", "-f", str(POM), f"-P{profile}", f"-Dkafka.version={version}",
        "dependency:copy-dependencies", f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
        detail = (result.stdout + result.stderr).strip().splitlines()[-3:]
        raise StackError(f"Maven could not resolve Kafka {version}: {' | '.join(detail)}")
    staging.rename(libs)
    return libs


def _resolve_from_apache(version: str, libs: Path) -> Path:
    url = ARCHIVE_URL.format(v=version)
    libs.parent.mkdir(parents=True, exist_ok=True)
    archive = libs.parent / Path(url).name
    urllib.request.urlretrieve(url, archive)
    with urllib.request.urlopen(url + ".sha512", timeout=30) as response:
        published = "".join(response.read().decode().split(":")[-1].split()).lower()
    actual = hashlib.sha512(archive.read_bytes()).hexdigest()
    if actual != published:
        archive.unlink()
        raise StackError(f"{url}: SHA-512 mismatch (got {actual[:16]}…, published {published[:16]}…)")
    with tarfile.open(archive) as tar:
        tar.extractall(libs.parent, filter="data")
    (libs.parent / f"kafka_2.13-{version}" / "libs").rename(libs)
    archive.unlink()
    return libs


def _sasl_mechanism(settings: Settings) -> str:
    return settings.kafka.sasl_mechanism or "SCRAM-SHA-512"


def check_local_sasl(settings: Settings) -> None:
    """``kafka.local_sasl`` needs clients that speak SASL/SCRAM and a user the broker can create."""
    kafka = settings.kafka
    if not kafka.local_sasl:
        return
    password = kafka.password.get_secret_value() if kafka.password else ""
    problems = [
        f"kafka.security_protocol must be SASL_PLAINTEXT (is {kafka.security_protocol})"
        * (kafka.security_protocol != "SASL_PLAINTEXT"),
        f"kafka.sasl_mechanism must be SCRAM-SHA-256 or SCRAM-SHA-512 (is {_sasl_mechanism(settings)})"
        * (not _sasl_mechanism(settings).startswith("SCRAM")),
        "kafka.username and kafka.password (or kafka.password_file) must be set"
        * (not kafka.username or not password),
        'kafka.username and kafka.password may not contain quotes, backslashes, "," or line breaks'
        * any(c in f"{kafka.username}{password}" for c in '"\\,\n\r'),
    ]
    if any(problems):
        raise StackError("kafka.local_sasl: " + "; ".join(p for p in problems if p))


def _listeners(settings: Settings) -> list[str]:
    """The client listener: PLAINTEXT, or SASL_PLAINTEXT with SCRAM when ``kafka.local_sasl``.

    The broker authenticates to itself (inter-broker listener) as the configured user. The
    controller listener stays PLAINTEXT on 127.0.0.1: KRaft controllers cannot use SCRAM.
    """
    kafka = settings.kafka
    name = "SASL_PLAINTEXT" if kafka.local_sasl else "PLAINTEXT"
    lines = [
        f"listeners={name}://127.0.0.1:{kafka.port},CONTROLLER://127.0.0.1:{kafka.controller_port}",
        f"advertised.listeners={name}://127.0.0.1:{kafka.port}",
        "controller.listener.names=CONTROLLER",
        f"inter.broker.listener.name={name}",
        f"listener.security.protocol.map={name}:{name},CONTROLLER:PLAINTEXT",
    ]
    if kafka.local_sasl:
        mechanism = _sasl_mechanism(settings)
        password = kafka.password.get_secret_value() if kafka.password else ""
        lines += [
            f"sasl.enabled.mechanisms={mechanism}",
            f"sasl.mechanism.inter.broker.protocol={mechanism}",
            f"listener.name.sasl_plaintext.{mechanism.lower()}.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{kafka.username}" password="{password}";',
        ]
    return lines


def server_properties(settings: Settings, data_dir: Path) -> str:
    kafka = settings.kafka
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{kafka.controller_port}",
            *_listeners(settings),
            f"log.dirs={data_dir}",
            f"num.partitions={kafka.topic_partitions}",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=8",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "log.retention.check.interval.ms=60000",
            "",
        ]
    )


class KafkaService:
    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.process = ServiceProcess("kafka", settings.state_dir / "kafka")

    @property
    def address(self) -> str:
        return self.settings.kafka.bootstrap_servers

    @property
    def managed(self) -> bool:
        return not self.settings.kafka.external

    def healthy(self) -> bool:
        """A metadata request answered by the broker (the same check a client's bootstrap makes)."""
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        host, _, port = self.address.split(",")[0].rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
        except (OSError, ValueError):
            return False
        try:
            admin = KafkaAdminClient(
                **self.settings.kafka.client_options(),
                request_timeout_ms=3000,
                bootstrap_timeout_ms=3000,
                reconnect_backoff_max_ms=500,
                client_id="tmstream-health",
            )
        except (KafkaError, OSError):
            return False
        try:
            return bool(admin.describe_cluster().get("brokers"))
        except (KafkaError, OSError):
            return False
        finally:
            admin.close()

    def preflight(self) -> None:
        check_local_sasl(self.settings)
        if not shutil.which("java"):
            raise StackError(
                "Java is not installed: the local Kafka broker needs Java 17+ "
                "(apt-get install -y openjdk-17-jre-headless), or set TMSTREAM_KAFKA_BOOTSTRAP"
            )
        for port in (self.settings.kafka.port, self.settings.kafka.controller_port):
            if not port_is_free(port):
                raise StackError(
                    f"kafka: port {port} is already in use by another process "
                    "(set TMSTREAM_KAFKA_PORT / TMSTREAM_KAFKA_CONTROLLER_PORT or stop it)"
                )

    def start(self) -> None:
        libs = resolve_jars(self.settings.kafka.version)
        folder = self.process.folder
        folder.mkdir(parents=True, exist_ok=True)
        data_dir = folder / "data"
        config = folder / "server.properties"
        config.touch(mode=0o600)
        config.chmod(0o600)  # with local_sasl it holds the broker's password: readable by its owner only
        config.write_text(server_properties(self.settings, data_dir))
        classpath = f"{libs}/*"
        if not (data_dir / "meta.properties").exists():
            # "--cluster-id=…" in one argument: a base64 id may start with "-", which argparse would
            # otherwise take for an option (one start in 64 failed that way).
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            formatted = subprocess.run(
                ["java", "-cp", classpath, "kafka.tools.StorageTool", "format",
                 f"--cluster-id={cluster_id}", "-c", str(config), "--ignore-formatted", *self._scram_user()],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if formatted.returncode != 0:
                detail = formatted.stderr.strip()[-300:]
                if self.settings.kafka.password:
                    detail = detail.replace(self.settings.kafka.password.get_secret_value(), "***")
                raise StackError(f"kafka: formatting storage failed: {detail}")
        log4j = folder / "log4j.properties"
        log4j.write_text(LOG4J)
        log4j2 = folder / "log4j2.properties"
        log4j2.write_text(LOG4J2)
        heap = self.settings.kafka.heap
        self.process.start(
            ["java", f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
             f"-Dlog4j.configuration=file:{log4j}", f"-Dlog4j2.configurationFile={log4j2}",
             "-cp", classpath, "kafka.Kafka", str(config)],
        )  # fmt: skip

    def _scram_user(self) -> list[str]:
        """KRaft keeps SCRAM credentials in the metadata log: the user is created when formatting.

        (The argument is visible in the process list for the second the format takes.)
        """
        kafka = self.settings.kafka
        if not kafka.local_sasl:
            return []
        password = kafka.password.get_secret_value() if kafka.password else ""
        credential = f'{_sasl_mechanism(self.settings)}=[name={kafka.username},password="{password}"]'
        return ["--add-scram", credential]
