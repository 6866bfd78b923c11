<?php
// Decode session data from stdin with PHP's own session code and encode it again.
// argv[1]: session.serialize_handler (php or php_serialize); argv[2]: a writable directory.
ini_set('session.serialize_handler', $argv[1]);
ini_set('session.save_path', $argv[2]);
ini_set('session.use_cookies', '0');
ini_set('session.cache_limiter', '');
session_start();
if (!session_decode(stream_get_contents(STDIN))) {
    fwrite(STDERR, "session_decode failed\n");
    exit(3);
}
echo session_encode();
