<?php
// CAS 3.0 (/cas/p3/serviceValidate), sign-in required. Also the service's
// logout URL: phpCAS::handleLogoutRequests ends the sessions there.
require __DIR__ . '/app.php';
campusid_app('index', CAS_VERSION_3_0, 'APP3');
