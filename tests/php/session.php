<?php
// A PHP app's side of the interop tests: start a session on a shared store, change it,
// print it as JSON. The store and locks come from -d ini settings given by the test
// (php-redis, php-memcached) or, for sharedance, from the handler below.
//
//   php session.php ACTION ID CHANGES_JSON HOLD_MS [sharedance HOST PORT]
//   HOLD_MS -1: hold the session until a line arrives on standard input
//   ACTION: new (PHP makes the id; ID ignored) | update | destroy
//
// The sharedance handler is written for these tests from the protocol: one request per
// connection, "S" + key length + data length (4-byte big-endian each) + key + data ->
// "OK\n"; "F" + key length + key -> the data until the server closes; "D" likewise -> "OK\n".

final class SharedanceHandler implements SessionHandlerInterface
{
    public function __construct(private string $host, private int $port) {}

    private function request(string $message): string|false
    {
        $sock = @fsockopen($this->host, $this->port, $errno, $errstr, 5);
        if ($sock === false) {
            return false;
        }
        fwrite($sock, $message);
        $reply = stream_get_contents($sock);
        fclose($sock);
        return $reply;
    }

    public function open(string $path, string $name): bool { return true; }
    public function close(): bool { return true; }

    public function read(string $id): string|false
    {
        $reply = $this->request('F' . pack('N', strlen($id)) . $id);
        return $reply === false ? '' : $reply;
    }

    public function write(string $id, string $data): bool
    {
        $reply = $this->request('S' . pack('NN', strlen($id), strlen($data)) . $id . $data);
        return $reply === "OK\n";
    }

    public function destroy(string $id): bool
    {
        return $this->request('D' . pack('N', strlen($id)) . $id) === "OK\n";
    }

    public function gc(int $max_lifetime): int|false { return 0; }
}

[, $action, $id, $changes, $hold_ms] = $argv;
if (($argv[5] ?? '') === 'sharedance') {
    session_set_save_handler(new SharedanceHandler($argv[6], (int) $argv[7]), true);
}
ini_set('session.use_cookies', '0');
ini_set('session.cache_limiter', '');
ini_set('session.sid_length', '32');
ini_set('session.sid_bits_per_character', '6');
if ($action !== 'new') {
    session_id($id);
}
if (!session_start()) {
    fwrite(STDERR, "session_start failed\n");
    exit(3);
}
$started = microtime(true);
if ($action === 'destroy') {
    session_destroy();
    echo json_encode(['id' => $id]);
    exit(0);
}
foreach (json_decode($changes, true) as $key => $value) {
    $_SESSION[$key] = $value;
}
if ((int) $hold_ms < 0) {
    // held until the test writes a line: it knows the session is read and its lock taken
    fwrite(STDERR, "session started\n");
    fgets(STDIN);
} else {
    usleep((int) $hold_ms * 1000);  // hold the session (and its lock) like a slow request
}
$session = $_SESSION;
if (!session_write_close()) {
    fwrite(STDERR, "session_write_close failed\n");
    exit(4);
}
echo json_encode(['id' => session_id(), 'session' => $session, 'started' => $started]);
