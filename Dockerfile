# The bridge in a container: built with cargo alone, run from a small Debian image.
#   docker build -t cauhop .
#   docker run --network host -v cauhop:/var/lib/cauhop cauhop
# (host networking: media is one UDP port whose address the pages must reach as is;
# behind Docker's NAT set sfu.public_ip). deploy/compose.yaml adds PostgreSQL and coturn.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p cauhop \
    && strip target/release/cauhop

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/cauhop --create-home --shell /usr/sbin/nologin cauhop
COPY --from=build /src/target/release/cauhop /usr/bin/cauhop
COPY deploy/config.example.toml /etc/cauhop/config.toml
USER cauhop
WORKDIR /var/lib/cauhop
ENV CAUHOP_CONFIG=/etc/cauhop/config.toml \
    CAUHOP_DATABASE_URL=sqlite:///var/lib/cauhop/cauhop.db \
    CAUHOP_HTTP_LISTEN=0.0.0.0:8080 \
    CAUHOP_HTTPS_LISTEN=0.0.0.0:8443
VOLUME /var/lib/cauhop
EXPOSE 8080/tcp 8443/tcp 50000/udp
HEALTHCHECK --interval=30s --timeout=3s CMD ["/usr/bin/cauhop", "--version"]
CMD ["/usr/bin/cauhop", "serve"]
