<?php
// CAS 2.0 (/cas/serviceValidate), sign-in required.
require __DIR__ . '/app.php';
campusid_app('cas2', CAS_VERSION_2_0, 'APP2');
