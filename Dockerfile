# Dockerfile -- tombo in place of Mosquitto in a docker-compose file (docker-compose.yml is the
# tutorial's service), laid out like the eclipse-mosquitto image: the broker reads
# /mosquitto/config/mosquitto.conf, keeps its data in /mosquitto/data, may log to /mosquitto/log,
# and listens on 1883.
#
# Two stages. The build stage runs `make package`, the very commands `make install-test` runs
# before tests/install checks the package (a release build configured for /usr, then
# `cpack -G DEB`). The runtime stage installs that .deb on debian:bookworm-slim, which pulls in
# only its runtime dependencies (libssl3, libsqlite3-0, libnats3.4, libdlt2, adduser).
#
#   docker build -t tombo .      or      docker compose up --build
#
# (Not built on the machine this was written on: it has no Docker daemon. README "Install".)

FROM debian:bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends make && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# scripts/deps.sh (through `make deps`) installs the compiler, cmake, OpenSSL and SQLite headers.
RUN make package

FROM debian:bookworm-slim
# The same uid and gid as the eclipse-mosquitto image's `mosquitto` user (1883), so volumes
# made for that image stay readable and writable; the package's postinst keeps an existing user.
RUN groupadd --system --gid 1883 tombo \
 && useradd --system --uid 1883 --gid tombo --home-dir /var/lib/tombo --shell /usr/sbin/nologin tombo
COPY --from=build /src/build/package/tombo_*.deb /tmp/
RUN apt-get update \
 && apt-get install -y --no-install-recommends /tmp/tombo_*.deb \
 && rm -rf /var/lib/apt/lists/* /tmp/tombo_*.deb
# eclipse-mosquitto's paths: its default config, its no-auth config, and `mosquitto` on PATH, so a
# compose file's `command: mosquitto -c /mosquitto-no-auth.conf` runs tombo unchanged.
RUN mkdir -p /mosquitto/config /mosquitto/data /mosquitto/log \
 && chown tombo:tombo /mosquitto/data /mosquitto/log \
 && ln -s /usr/sbin/tombo /usr/local/sbin/mosquitto
COPY docker/mosquitto.conf /mosquitto/config/mosquitto.conf
COPY docker/mosquitto-no-auth.conf /mosquitto-no-auth.conf
VOLUME ["/mosquitto/data", "/mosquitto/log"]
EXPOSE 1883
# tombo does not switch users itself (the `user` directive is refused): the image runs it as tombo.
USER tombo
CMD ["/usr/sbin/tombo", "-c", "/mosquitto/config/mosquitto.conf"]
