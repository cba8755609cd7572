# Sourceable: writes the nginx.conf the tests and the benchmark run nginx with (one place for it).

# nginx_conf DIR LISTEN [off]: DIR/nginx.conf for nginx as one process (master_process off: the
# preloaded shape; master plus workers is later work), serving DIR/www on LISTEN (addr:port), logs and
# pid in DIR/logs. The access log has one line per request, "$remote_addr $remote_port "$request"
# $status $body_bytes_sent", so a test can tell who asked, over which connection, and what it got;
# "off" (the benchmark) writes none and keeps open file descriptors of the files it serves
# (open_file_cache, as nginx's tuning guides advise for static files: without it, every request opens,
# fstats and closes the file, a sixth of a preloaded nginx's CPU per Connection: close request; the
# kernel run gets the same configuration). NGINX_FILE_CACHE=off leaves it out (to compare).
# Tests keep neither: they may rewrite a file between requests.
nginx_conf() {
    local dir=$1 listen=$2 access="access_log $1/logs/access.log gz;"
    if [ "${3:-}" = off ]; then
        access="access_log off;"
        [ "${NGINX_FILE_CACHE:-on}" = on ] && access="$access open_file_cache max=1000 inactive=60s;"
    fi
    mkdir -p "$dir/logs" "$dir/www"
    cat >"$dir/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; error_log $dir/logs/error.log info; pid $dir/logs/nginx.pid;
events { worker_connections 1024; }
http { log_format gz '\$remote_addr \$remote_port "\$request" \$status \$body_bytes_sent';
  $access keepalive_requests 1000000;
  client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
  server { listen $listen; root $dir/www; } }
CONF
}
