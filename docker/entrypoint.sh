#!/bin/sh
# First start of a new data volume: put the image's articles where the bot reads and adds them.
set -eu
if [ ! -d "$CORPUS_DIR" ]; then
    cp -R /app/corpus "$CORPUS_DIR"
fi
exec "$@"
