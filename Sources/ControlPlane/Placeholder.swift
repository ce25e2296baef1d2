import Hummingbird
import GRDB
import PostgresNIO
import Crypto
import Prometheus
import JobProtocol
