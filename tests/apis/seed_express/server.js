// The seed API (as in the blog post fleetbench grew from): Express + jsonwebtoken.
// The token is the raw value of Authorization (no "Bearer"); no header: 401; any token that
// does not verify (bad signature, expired, malformed): 403. HS256 with JWT_SECRET.
// Usage: JWT_SECRET=... node server.js [port]   (port 0: a free one; prints "listening PORT")
'use strict';
const express = require('express');
const jwt = require('jsonwebtoken');

const secret = process.env.JWT_SECRET;
if (!secret) {
  console.error('set JWT_SECRET');
  process.exit(2);
}
const app = express();

function authenticate(req, res, next) {
  const token = req.headers['authorization'];
  if (!token) return res.sendStatus(401);
  jwt.verify(token, secret, { algorithms: ['HS256'] }, (err, claims) => {
    if (err) return res.sendStatus(403);
    req.device = claims;
    next();
  });
}

app.get('/api/data', authenticate, (req, res) => {
  res.json({ message: 'Protected data', device_id: req.device.device_id });
});

const server = app.listen(Number(process.argv[2] || 3000), '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
