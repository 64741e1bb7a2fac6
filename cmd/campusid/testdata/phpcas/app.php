<?php
// The test application of TestInteropPhpCAS (cmd/campusid/interop_phpcas_test.go),
// protected by phpCAS as docs/cas.md, "Configuring clients", tells PHP
// applications to do. The pages include this file and call campusid_app()
// with their protocol version and mode. config.php, written by the test
// once the PHP server listens, holds the addresses and files.

require_once 'CAS.php'; // Debian's php-cas (/usr/share/php)

// FileLogger receives phpCAS's debug log (phpCAS::setLogger calls info()),
// which the test prints when it fails.
final class FileLogger
{
    public function __construct(private string $file)
    {
    }

    public function info($message, array $context = []): void
    {
        file_put_contents($this->file, $message . "\n", FILE_APPEND | LOCK_EX);
    }
}

// campusid_app runs phpCAS for one page and prints what it got as JSON.
// $version is CAS_VERSION_3_0 or CAS_VERSION_2_0; $session names the PHP
// session cookie, so that each page keeps its own sign-in; with $gateway
// the page asks campusid with gateway=true (phpCAS::checkAuthentication)
// instead of requiring a sign-in (phpCAS::forceAuthentication).
function campusid_app(string $page, string $version, string $session, bool $gateway = false): void
{
    $cfg = require __DIR__ . '/config.php';
    session_name($session);
    phpCAS::setLogger(new FileLogger($cfg['log']));
    phpCAS::client($version, $cfg['cas_host'], $cfg['cas_port'], '/cas', $cfg['base_url']);
    phpCAS::setCasServerCACert($cfg['ca_file']);
    // campusid's delivery worker posts the logout requests from 127.0.0.1.
    phpCAS::handleLogoutRequests(true, ['127.0.0.1']);
    // Keep the ticket that signed the person in and the URL that validated
    // it, to show them.
    phpCAS::setPostAuthenticateCallback(function ($ticket) {
        $_SESSION['campusid_test'] = [
            'ticket' => $ticket,
            'validate_url' => strtok(phpCAS::getCasClient()->getServerServiceValidateURL(), '?'),
        ];
    });
    if ($gateway) {
        $authenticated = phpCAS::checkAuthentication();
    } else {
        phpCAS::forceAuthentication();
        $authenticated = true;
    }
    $out = [
        'page' => $page,
        'authenticated' => $authenticated,
        'session_id' => session_id(),
    ];
    if ($authenticated) {
        $out['user'] = phpCAS::getUser();
        $out['attributes'] = (object) phpCAS::getAttributes();
        $out['ticket'] = $_SESSION['campusid_test']['ticket'] ?? '';
        $out['validate_url'] = $_SESSION['campusid_test']['validate_url'] ?? '';
    }
    header('Content-Type: application/json');
    echo json_encode($out, JSON_UNESCAPED_SLASHES), "\n";
}
