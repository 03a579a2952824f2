/**
 * Preloaded into the sim child (`--import`): when the process that started it dies, even by
 * SIGKILL or a crash, its end of our stdin pipe closes; the sim then stops as on Ctrl-C instead
 * of holding the fixed ports for the next `npm start`.
 */
process.stdin.on('end', () => process.kill(process.pid, 'SIGTERM'));
process.stdin.on('error', () => process.kill(process.pid, 'SIGTERM'));
process.stdin.resume();
