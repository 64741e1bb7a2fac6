<?php
// CAS 3.0 with gateway=true (phpCAS::checkAuthentication): signed in when
// campusid has a session, anonymous otherwise.
require __DIR__ . '/app.php';
campusid_app('gateway', CAS_VERSION_3_0, 'APPGW', true);
