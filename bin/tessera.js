#!/usr/bin/env node
'use strict';
require('reflect-metadata');
require('../dist/cli/main.js')
  .main(process.argv)
  .then((code) => {
    if (typeof code === 'number') process.exitCode = code;
  });
