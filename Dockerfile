# The hardened artifact in an empty image: no shell, no libc, no package
# manager; one statically linked file (see docs/operations.md, "Container
# image"). Nothing is built or downloaded here: build and verify the artifact
# first, then copy it in, so the image holds exactly the bytes you checked.
#
#   scripts/build-artifact prod
#   docker build --build-arg ENV=prod -t portcullis:prod .
FROM scratch
ARG ENV=default
COPY dist/portcullis-${ENV} /portcullis
# Numeric, so no /etc/passwd is needed; not root (65532 is distroless's "nonroot").
USER 65532:65532
ENTRYPOINT ["/portcullis"]
